"""Jobs: the job row is the current state; progress events are its history (docs/design.md, "Jobs").

A batch moves the job's counts by exactly the video rows its transaction changed (locked first), and every
event, start and end recounts them from `videos`: a rerun after a crash can neither double nor lose them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.errors import Conflict, NotFound
from db.events import ProgressEvent, new_event, stored_data
from db.models import ERROR_MAX, MESSAGE_MAX, Job, JobStatus, ProgressEventRow, Video, VideoStatus

IMPORT_KIND = "import"
ADD_KIND = "add"
RETRY_KIND = "retry"
ACTIVE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def bound(text: str | None, limit: int) -> str | None:
    """Cut texts that go into events, so a NOTIFY payload always fits (docs/design.md, "NOTIFY payload")."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


async def create_job(session: AsyncSession, user_id: UUID, list_id: UUID | None, kind: str) -> Job:
    job = Job(user_id=user_id, list_id=list_id, kind=kind, status=JobStatus.QUEUED.value)
    session.add(job)
    await session.flush()
    return job


async def get_owned_job(session: AsyncSession, user_id: UUID, job_id: UUID, *, lock: bool = False) -> Job:
    query = select(Job).where(Job.id == job_id, Job.user_id == user_id)
    if lock:
        query = query.with_for_update()
    job = await session.scalar(query)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def page_jobs(
    session: AsyncSession,
    user_id: UUID,
    *,
    state: Literal["active", "finished"] | None,
    list_id: UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    conditions: list[Any] = [Job.user_id == user_id]
    if state == "active":
        conditions.append(Job.status.in_(ACTIVE_STATUSES))
    elif state == "finished":
        conditions.append(Job.status.not_in(ACTIVE_STATUSES))
    if list_id is not None:
        conditions.append(Job.list_id == list_id)
    total = await session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    rows = await session.scalars(
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def video_counts(session: AsyncSession, job_id: UUID) -> dict[str, int]:
    rows = await session.execute(
        select(Video.status, func.count()).where(Video.job_id == job_id).group_by(Video.status)
    )
    return dict(rows.tuples().all())


def apply_counts(job: Job, counts: dict[str, int]) -> None:
    job.total = sum(counts.values())
    job.failed = counts.get(VideoStatus.FAILED.value, 0)
    job.processed = counts.get(VideoStatus.READY.value, 0) + job.failed


async def refresh_counts(session: AsyncSession, job_id: UUID) -> None:
    """Recompute an active job's counts after its videos changed outside the worker."""
    job = await session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is not None and job.status in ACTIVE_STATUSES:
        apply_counts(job, await video_counts(session, job_id))


def job_event(job: Job, *, error: str | None = None) -> ProgressEvent:
    """The job's current state as a progress event (texts bounded so a NOTIFY payload always fits)."""
    return new_event(
        job_id=job.id,
        list_id=job.list_id,
        status=job.status,
        processed=job.processed,
        failed=job.failed,
        total=job.total,
        rate=job.rate,
        eta_s=job.eta_s,
        message=bound(job.message, MESSAGE_MAX),
        error=bound(error, ERROR_MAX),
    )


async def write_event(session: AsyncSession, job: Job, *, error: str | None = None) -> int:
    """Insert one progress event for the job's current state, in the caller's transaction; returns its seq.

    The trigger numbers the event; the job's `last_seq` (the seq its snapshot state is as of) is ours to
    keep: set here from `RETURNING seq`, it is written with the job's other changes in one UPDATE.
    """
    event = job_event(job, error=error)
    with session.no_autoflush:  # the job's pending changes and last_seq: one UPDATE, at the next flush
        seq = await session.scalar(
            insert(ProgressEventRow)
            .values(user_id=job.user_id, job_id=job.id, data=stored_data(event))
            .returning(ProgressEventRow.seq)
        )
    assert seq is not None, "the trigger assigns every event a seq"
    job.last_seq = seq
    return seq


async def finish_cancelled(session: AsyncSession, job: Job, message: str) -> None:
    """Mark the job's untouched videos cancelled and write its terminal event."""
    await session.execute(
        update(Video)
        .where(
            Video.job_id == job.id,
            Video.status == VideoStatus.PENDING.value,
        )
        .values(status=VideoStatus.CANCELLED.value, error="cancelled")
    )
    if job.list_id is not None:
        apply_counts(job, await video_counts(session, job.id))
    job.status = JobStatus.CANCELLED.value
    job.message = bound(message, MESSAGE_MAX)
    job.eta_s = None
    job.finished_at = datetime.now(UTC)
    await write_event(session, job)


async def request_cancel(session: AsyncSession, user_id: UUID, job_id: UUID) -> Job:
    """A queued job is cancelled at once; a running one is flagged and its worker stops between batches."""
    job = await get_owned_job(session, user_id, job_id, lock=True)
    if job.status not in ACTIVE_STATUSES:
        raise Conflict(f"job {job_id} is already {job.status}")
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED.value:
        await finish_cancelled(session, job, "Cancelled before it started")
    return job


async def request_cancel_for_list(session: AsyncSession, user_id: UUID, list_id: UUID) -> None:
    jobs = await session.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.list_id == list_id, Job.status.in_(ACTIVE_STATUSES))
        .with_for_update()
    )
    for job in jobs:
        job.cancel_requested = True
        if job.status == JobStatus.QUEUED.value:
            await finish_cancelled(session, job, "Cancelled: the list was deleted")


async def create_retry(session: AsyncSession, user_id: UUID, job_id: UUID) -> Job:
    """A new job for the given job's failed and cancelled videos (those still in a list)."""
    old = await get_owned_job(session, user_id, job_id, lock=True)
    if old.status in ACTIVE_STATUSES:
        raise Conflict(f"job {job_id} is still {old.status}; cancel it or wait for it to finish")
    retryable = or_(Video.status == VideoStatus.FAILED.value, Video.status == VideoStatus.CANCELLED.value)
    # Pending videos of a job stopped by quota exhaustion are retryable too.
    selectable = or_(retryable, Video.status == VideoStatus.PENDING.value)
    count = await session.scalar(
        select(func.count()).select_from(Video).where(Video.job_id == old.id, selectable)
    )
    if not count:
        raise Conflict(f"job {job_id} has no failed or cancelled videos to retry")
    job = await create_job(session, user_id, old.list_id, RETRY_KIND)
    await session.execute(
        update(Video)
        .where(Video.job_id == old.id, selectable)
        .values(job_id=job.id, status=VideoStatus.PENDING.value, error=None)
    )
    apply_counts(job, await video_counts(session, job.id))
    job.message = f"Retrying {job.total} videos"
    return job
