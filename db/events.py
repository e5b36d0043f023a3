"""The progress event: one shape for the worker, the trigger's NOTIFY, the hub, the socket and history.

The worker writes the fields it knows into `progress_events.data`; the BEFORE INSERT trigger adds `seq`,
`job_id` and `at` (DESIGN.md section 5), and the AFTER INSERT trigger sends the same JSON.
"""

from __future__ import annotations

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


def progress_percent(processed: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * processed / total, 1)
