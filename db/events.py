"""The progress event: one shape for the worker, the trigger's NOTIFY, the hub, the socket and history.

The worker builds a `ProgressEvent` and stores it in `progress_events.data` (`stored_data`), except the
fields the database assigns: the BEFORE INSERT trigger sets `seq` (commit-ordered, see docs/design.md)
and `at`, and the AFTER INSERT trigger sends the same JSON. The snapshot query
(`progress_snapshot` in db/sql/progress_queries.sql) renders a job's state in this shape too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import msgspec


class ProgressEvent(msgspec.Struct, kw_only=True):
    seq: int
    job_id: UUID
    list_id: UUID | None
    kind: str | None = None
    """`import`, `add`, `retry`, `refresh` (events written before jobs had kinds lack it)."""
    source: str | None = None
    """What a person recognises the job by: a file name, "12 pasted links", "retry of …"."""
    upload_id: UUID | None = None
    """Shared by the jobs of one upload that filled several lists (a Takeout archive); else null."""
    status: str
    progress: float
    processed: int
    """Videos done: fetched (ready or failed), or for a refresh, checked (including `failed`)."""
    failed: int
    """Videos that failed; for a refresh, those YouTube did not answer for (they keep their state)."""
    total: int
    changed: int | None = None
    """Refresh only (else null): videos whose title or channel name changed (workers/refresh.py,
    COMPARED: a thumbnail replaced by its owner keeps its URL, so it is not compared)."""
    gone: int | None = None
    """Refresh only: videos found gone, private or blocked (now `unavailable`, metadata kept)."""
    returned: int | None = None
    """Refresh only: `unavailable` videos that are back (now `ready`)."""
    rate: float | None = None
    eta_s: int | None = None
    message: str | None = None
    error: str | None = None
    started_at: str | None = None
    """When the job's first run started (ISO 8601 like `at`); null while queued."""
    next_attempt_at: str | None = None
    """Running: its next attempt after a failed one; waiting: when the quota resets and it resumes;
    failed: its next automatic retry; else null."""
    at: str
    """ISO 8601 UTC with milliseconds, e.g. `2026-11-29T10:00:00.123Z`."""


ASSIGNED_BY_DATABASE: Final = frozenset({"seq", "at"})
"""Fields the insert trigger fills in; a writer's values for them are placeholders."""


def new_event(
    *,
    job_id: UUID,
    list_id: UUID | None,
    kind: str | None,
    source: str | None,
    upload_id: UUID | None = None,
    status: str,
    processed: int,
    failed: int,
    total: int,
    changed: int | None = None,
    gone: int | None = None,
    returned: int | None = None,
    rate: float | None,
    eta_s: int | None,
    message: str | None,
    error: str | None,
    started_at: datetime | None,
    next_attempt_at: datetime | None,
) -> ProgressEvent:
    """An event as its writer knows it, before the database numbers and stamps it."""
    return ProgressEvent(
        seq=0,
        at="",
        job_id=job_id,
        list_id=list_id,
        kind=kind,
        source=source,
        upload_id=upload_id,
        status=status,
        progress=progress_percent(processed, total),
        processed=processed,
        failed=failed,
        total=total,
        changed=changed,
        gone=gone,
        returned=returned,
        rate=rate,
        eta_s=eta_s,
        message=message,
        error=error,
        started_at=iso_time(started_at),
        next_attempt_at=iso_time(next_attempt_at),
    )


def stored_data(event: ProgressEvent) -> dict[str, Any]:
    """The JSON the writer inserts into `progress_events.data`."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    for name in ASSIGNED_BY_DATABASE:
        del data[name]
    return data


def progress_percent(processed: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * processed / total, 1)


def iso_time(moment: datetime | None) -> str | None:
    """The events' time format, as the database writes `at`: UTC, milliseconds, `Z`."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
