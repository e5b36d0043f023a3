"""Jobs: the job row is the current state; progress events are its history (docs/design.md, "Jobs").

A batch moves the job's counts by exactly the video rows its transaction changed (locked first), and every
event, start and end recounts them from `videos`: a rerun after a crash can neither double nor lose them.

Every job has a kind (JobKind) and a source a person recognises it by. Retries of any kind (a job's Retry,
a list's "Retry failed", chosen videos, the automatic retry after an outage) are new `retry` jobs that
take the videos over; the job they came from keeps its row as history.

A `refresh` (an availability check) takes no video over: it walks its list's ready and unavailable videos
in id order (workers/refresh.py). Its retry is a new refresh of the videos the old one did not check.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.errors import Conflict, NotFound
from app.wording import plural
from db.events import ProgressEvent, new_event, stored_data
from db.models import (
    ERROR_MAX,
    MESSAGE_MAX,
    SOURCE_MAX,
    BookmarkList,
    Job,
    JobKind,
    JobStatus,
    ProgressEventRow,
    RefreshSchedule,
    Video,
    VideoStatus,
)
from db.queries import queries

ACTIVE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.WAITING.value)
Outcome = Literal["completed", "completed_with_errors", "failed", "cancelled"]
RETRYABLE_VIDEO_STATUSES = (VideoStatus.FAILED.value, VideoStatus.CANCELLED.value)
REFRESH_SOURCE: Final = "availability check"
SCHEDULED_REFRESH_SOURCE: Final = "scheduled availability check"
SCHEDULE_INTERVALS: Final = {
    RefreshSchedule.WEEKLY: timedelta(days=7),
    RefreshSchedule.MONTHLY: timedelta(days=30),
}
"""How long after a list's last check (by hand or scheduled) its scheduled one is due."""
NOTHING_BEFORE: Final = UUID(int=0)
"""The keyset's start: every row id is past it."""


def bound(text: str | None, limit: int) -> str | None:
    """Cut texts that go into events, so a NOTIFY payload always fits (docs/design.md, "NOTIFY payload")."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def clean_source(text: str | None) -> str | None:
    """A source fit to show: no control characters or path (a file name is user input), bounded."""
    if text is None:
        return None
    name = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(char for char in name if unicodedata.category(char) not in ("Cc", "Cs", "Cf")).strip()
    return bound(kept, SOURCE_MAX) or None


async def create_job(
    session: AsyncSession,
    user_id: UUID,
    list_id: UUID | None,
    kind: JobKind,
    source: str | None,
    *,
    retry_of: UUID | None = None,
    auto_retries: int = 0,
) -> Job:
    job = Job(
        user_id=user_id,
        list_id=list_id,
        kind=kind.value,
        source=clean_source(source),
        status=JobStatus.QUEUED.value,
        retry_of=retry_of,
        auto_retries=auto_retries,
    )
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
    outcome: Outcome | None = None,
    list_id: UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    conditions: list[Any] = [Job.user_id == user_id]
    if state == "active":
        conditions.append(Job.status.in_(ACTIVE_STATUSES))
    elif state == "finished":
        conditions.append(Job.status.not_in(ACTIVE_STATUSES))
    if outcome is not None:
        conditions.append(Job.status == outcome)
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
        kind=job.kind,
        source=job.source,
        upload_id=job.upload_id,
        status=job.status,
        processed=job.processed,
        failed=job.failed,
        total=job.total,
        changed=job.changed,
        gone=job.gone,
        returned=job.returned,
        rate=job.rate,
        eta_s=job.eta_s,
        message=bound(job.message, MESSAGE_MAX),
        error=bound(error, ERROR_MAX),
        started_at=job.started_at,
        next_attempt_at=job.next_attempt_at,
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
    """Mark the job's untouched videos cancelled and write its terminal event. (A refresh's videos are
    never its own: they stay as its last committed batch left them.)"""
    if job.kind != JobKind.REFRESH:
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
    job.next_attempt_at = None
    job.finished_at = datetime.now(UTC)
    await write_event(session, job)


def cancel_at_once_message(job: Job) -> str | None:
    """Why a job can be cancelled right here (no worker is running it), or None: a running job stops
    between batches. A job waiting between attempts, or for the quota, has no batch in flight, so it
    ends at once too."""
    if job.status == JobStatus.QUEUED.value:
        return "Cancelled before it started"
    if job.status == JobStatus.WAITING.value:
        return f"Cancelled while waiting for the YouTube quota ({job.processed:,} of {job.total:,} done)"
    if job.status == JobStatus.RUNNING.value and job.next_attempt_at is not None:
        return f"Cancelled while waiting to try again ({job.processed:,} of {job.total:,} done)"
    return None


async def request_cancel(session: AsyncSession, user_id: UUID, job_id: UUID) -> Job:
    """A queued job, or one waiting between attempts, is cancelled at once; a running one is flagged and
    its worker stops between batches."""
    job = await get_owned_job(session, user_id, job_id, lock=True)
    if job.status not in ACTIVE_STATUSES:
        raise Conflict(f"job {job_id} is already {job.status}")
    job.cancel_requested = True
    message = cancel_at_once_message(job)
    if message is not None:
        await finish_cancelled(session, job, message)
    return job


async def request_cancel_for_list(session: AsyncSession, user_id: UUID, list_id: UUID) -> None:
    jobs = await session.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.list_id == list_id, Job.status.in_(ACTIVE_STATUSES))
        .with_for_update()
    )
    for job in jobs:
        job.cancel_requested = True
        if cancel_at_once_message(job) is not None:
            await finish_cancelled(session, job, "Cancelled: the list was deleted")


def retry_source(old: Job, *, automatic: bool = False) -> str:
    """ "retry of links.csv": a retry of a retry names the same origin, not "retry of retry of …"."""
    origin = old.source or old.kind
    for prefix in ("automatic retry of ", "retry of "):
        origin = origin.removeprefix(prefix)
    return f"{'automatic ' if automatic else ''}retry of {origin}"


def not_in_an_active_job() -> ColumnElement[bool]:
    """A video that no queued or running job is about to write (a retry must not take it away)."""
    active = select(Job.id).where(Job.id == Video.job_id, Job.status.in_(ACTIVE_STATUSES))
    return ~active.exists()


async def move_into_retry(
    session: AsyncSession,
    user_id: UUID,
    list_id: UUID | None,
    conditions: Sequence[ColumnElement[bool]],
    source: Callable[[int], str],
    *,
    retry_of: UUID | None = None,
    auto_retries: int = 0,
) -> Job | None:
    """A new `retry` job that takes over the user's videos matching `conditions` (as pending), or None
    when none match. `source(count)` names it."""
    where = [Video.user_id == user_id, *conditions]
    count = await session.scalar(select(func.count()).select_from(Video).where(*where))
    if not count:
        return None
    job = await create_job(
        session, user_id, list_id, JobKind.RETRY, source(count), retry_of=retry_of, auto_retries=auto_retries
    )
    await session.execute(
        update(Video)
        .where(*where)
        .values(job_id=job.id, status=VideoStatus.PENDING.value, error=None, updated_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    apply_counts(job, await video_counts(session, job.id))
    job.message = f"Retrying {plural(job.total, 'video')}"
    return job


async def create_retry(session: AsyncSession, user_id: UUID, job_id: UUID) -> Job:
    """A new job for the given job's failed and cancelled videos, and the pending ones a job-level stop
    (outage, bad key) left behind (only those still in a list)."""
    old = await get_owned_job(session, user_id, job_id, lock=True)
    if old.status in ACTIVE_STATUSES:
        raise Conflict(f"job {job_id} is still {old.status}; cancel it or wait for it to finish")
    job = await retry_leftovers(session, old, automatic=False)
    if job is None and old.kind == JobKind.REFRESH:
        raise Conflict(f"job {job_id} has nothing left to retry: its list was deleted")
    if job is None:
        raise Conflict(f"job {job_id} has nothing left to retry: no failed, cancelled or pending video")
    return job


async def retry_leftovers(session: AsyncSession, old: Job, *, automatic: bool) -> Job | None:
    """The retry of a finished job (locked by the caller); its automatic retry, if one was due, is off."""
    old.next_attempt_at = None
    if old.kind == JobKind.REFRESH:
        return await retry_refresh(session, old, automatic=automatic)
    statuses = (*RETRYABLE_VIDEO_STATUSES, VideoStatus.PENDING.value)
    return await move_into_retry(
        session,
        old.user_id,
        old.list_id,
        [Video.job_id == old.id, Video.status.in_(statuses)],
        lambda _count: retry_source(old, automatic=automatic),
        retry_of=old.id,
        auto_retries=old.auto_retries + 1 if automatic else 0,
    )


async def retry_failed_of_list(session: AsyncSession, user_id: UUID, list_id: UUID) -> Job:
    """Every failed video of the list (not one a running job is about to write) in a new job."""
    conditions = [
        Video.list_id == list_id,
        Video.status == VideoStatus.FAILED.value,
        not_in_an_active_job(),
    ]
    job = await move_into_retry(
        session, user_id, list_id, conditions, lambda count: f"retry of {plural(count, 'failed video')}"
    )
    if job is None:
        raise Conflict("this list has no failed video to retry")
    return job


async def retry_videos(session: AsyncSession, user_id: UUID, video_ids: Sequence[UUID]) -> list[Job]:
    """The chosen failed or cancelled videos in a new job per list. Any id that is not one of the user's
    videos is 404; a choice with nothing to retry is 409."""
    ids = list(dict.fromkeys(video_ids))
    found = await session.execute(
        select(Video.id, Video.list_id).where(Video.user_id == user_id, Video.id.in_(ids))
    )
    rows = found.tuples().all()
    missing = set(ids) - {video_id for video_id, _ in rows}
    if missing:
        raise NotFound(f"video {sorted(missing, key=str)[0]} not found")
    jobs: list[Job] = []
    for list_id in sorted({list_id for _, list_id in rows}, key=str):
        chosen = [video_id for video_id, in_list in rows if in_list == list_id]
        conditions = [
            Video.id.in_(chosen),
            Video.list_id == list_id,
            Video.status.in_(RETRYABLE_VIDEO_STATUSES),
            not_in_an_active_job(),
        ]
        job = await move_into_retry(
            session, user_id, list_id, conditions, lambda count: f"retry of {plural(count, 'video')}"
        )
        if job is not None:
            jobs.append(job)
    if not jobs:
        raise Conflict("none of the chosen videos failed or was cancelled: there is nothing to retry")
    return jobs


async def refresh_remaining(
    session: AsyncSession, list_id: UUID, stale_before: datetime, after: UUID | None
) -> int:
    """Videos a refresh of the list (checking what was not checked since `stale_before`) has left."""
    connection = await session.connection()
    result = await connection.exec_driver_sql(
        queries["refresh_remaining"], (list_id, stale_before, after or NOTHING_BEFORE)
    )
    return int(result.scalar_one())


async def create_refresh(
    session: AsyncSession,
    user_id: UUID,
    list_id: UUID,
    source: str = REFRESH_SOURCE,
    *,
    stale_before: datetime | None = None,
    retry_of: UUID | None = None,
    auto_retries: int = 0,
) -> Job:
    """A `refresh` job that checks the list's ready and unavailable videos not checked since
    `stale_before` (default: now, i.e. all of them). 409 while another check of the list is active, or
    when there is nothing to check. A list on a schedule is next due one interval after this check."""
    owned = await session.scalar(
        select(BookmarkList)
        .where(BookmarkList.id == list_id, BookmarkList.user_id == user_id)
        .with_for_update()  # serialises two checks of one list
    )
    if owned is None:
        raise NotFound(f"list {list_id} not found")
    running = await session.scalar(
        select(Job.id).where(
            Job.list_id == list_id, Job.kind == JobKind.REFRESH.value, Job.status.in_(ACTIVE_STATUSES)
        )
    )
    if running is not None:
        raise Conflict(
            "an availability check of this list is already under way", extra={"job_id": str(running)}
        )
    now = await session.scalar(select(func.now()))
    assert now is not None
    since = stale_before or now
    total = await refresh_remaining(session, list_id, since, None)
    if not total and stale_before is not None:
        raise Conflict("every video of this list was checked since that check began: nothing is left")
    if not total:
        raise Conflict("this list has no video to check: only ready and unavailable videos are checked")
    job = await create_job(
        session, user_id, list_id, JobKind.REFRESH, source, retry_of=retry_of, auto_retries=auto_retries
    )
    job.stale_before = since
    job.total = total
    job.changed = job.gone = job.returned = 0
    job.message = f"Queued: checking {plural(total, 'video')}"
    interval = SCHEDULE_INTERVALS.get(RefreshSchedule(owned.refresh_schedule))
    owned.next_refresh_at = None if interval is None else now + interval
    await session.flush()
    return job


async def retry_refresh(session: AsyncSession, old: Job, *, automatic: bool) -> Job | None:
    """A new check of what the old one did not check (cancelled before it, or no answer from YouTube);
    None when its list is gone; Conflict when nothing is left or another check of the list runs."""
    if old.list_id is None or old.stale_before is None:
        return None
    return await create_refresh(
        session,
        old.user_id,
        old.list_id,
        retry_source(old, automatic=automatic),
        stale_before=old.stale_before,
        retry_of=old.id,
        auto_retries=old.auto_retries + 1 if automatic else 0,
    )


def stalled_after_s(job_heartbeat_s: int) -> int:
    """A running job whose worker has not touched it this long is stalled (two missed heartbeats)."""
    return 2 * job_heartbeat_s


async def count_stalled(session: AsyncSession, job_heartbeat_s: int) -> int:
    """Jobs `running` with no live heartbeat: their worker died or hangs (SAQ's sweep or the stranded-job
    cron will rerun them; a count that stays up needs an operator)."""
    connection = await session.connection()
    result = await connection.exec_driver_sql(queries["stalled_jobs"], (stalled_after_s(job_heartbeat_s),))
    return int(result.scalar_one())
