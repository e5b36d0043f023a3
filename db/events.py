"""The progress event: one shape for the worker, the trigger's NOTIFY, the hub, the socket and history.

The worker builds a `ProgressEvent` and stores it in `progress_events.data` (`stored_data`), except the
fields the database assigns: the BEFORE INSERT trigger sets `seq` (commit-ordered, see docs/design.md)
and `at`, and the AFTER INSERT trigger sends the same JSON. The snapshot query
(`progress_snapshot` in db/sql/progress_queries.sql) renders a job's state in this shape too.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import msgspec


class ProgressEvent(msgspec.Struct, kw_only=True):
    seq: int
    job_id: UUID
    list_id: UUID | None
    status: str
    progress: float
    processed: int
    failed: int
    total: int
    rate: float | None = None
    eta_s: int | None = None
    message: str | None = None
    error: str | None = None
    at: str
    """ISO 8601 UTC with milliseconds, e.g. `2026-11-29T10:00:00.123Z`."""


ASSIGNED_BY_DATABASE: Final = frozenset({"seq", "at"})
"""Fields the insert trigger fills in; a writer's values for them are placeholders."""


def new_event(
    *,
    job_id: UUID,
    list_id: UUID | None,
    status: str,
    processed: int,
    failed: int,
    total: int,
    rate: float | None,
    eta_s: int | None,
    message: str | None,
    error: str | None,
) -> ProgressEvent:
    """An event as its writer knows it, before the database numbers and stamps it."""
    return ProgressEvent(
        seq=0,
        at="",
        job_id=job_id,
        list_id=list_id,
        status=status,
        progress=progress_percent(processed, total),
        processed=processed,
        failed=failed,
        total=total,
        rate=rate,
        eta_s=eta_s,
        message=message,
        error=error,
    )


def stored_data(event: ProgressEvent) -> dict[str, Any]:
    """The JSON the writer inserts into `progress_events.data`."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    for name in ASSIGNED_BY_DATABASE:
        del data[name]
    return data


def progress_percent(processed: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * processed / total, 1)
