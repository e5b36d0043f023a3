"""Running one job: fetch its pending videos in batches and commit each batch with the job's state.

Each batch is ONE transaction: the video rows, the job row (its counts moved by exactly the rows the batch
changed, and recounted from `videos` for every event) and, when due, one progress event. So the live
stream, the history and the tables can never disagree, and a worker killed mid-batch loses only that
uncommitted batch: the rerun picks up the videos still `pending`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services import jobs as job_service
from app.wording import plural
from db.models import ERROR_MAX, MESSAGE_MAX, Job, JobStatus, Video, VideoStatus
from db.queries import queries
from workers.youtube import FetchResult, VideoMetadata, YouTubeError

log = logging.getLogger(__name__)
VIDEOS = cast(Table, Video.__table__)


class MetadataSource(Protocol):
    @property
    def batch_size(self) -> int: ...

    async def fetch(self, ids: list[str]) -> FetchResult: ...


@dataclass
class Pace:
    """Coalesces events and measures this run's own speed (a resumed run starts a fresh measurement)."""

    interval_s: float
    started: float = field(default_factory=time.monotonic)
    start_processed: int = 0
    last_event_at: float | None = None
    last_event_counts: tuple[int, int, int] | None = None

    def due(self, job: Job) -> bool:
        if self.last_event_at is None:
            return True
        counts = (job.processed, job.failed, job.total)
        return counts != self.last_event_counts and time.monotonic() - self.last_event_at >= self.interval_s

    def sent(self, job: Job) -> None:
        self.last_event_at = time.monotonic()
        self.last_event_counts = (job.processed, job.failed, job.total)

    def update_rate(self, job: Job) -> None:
        elapsed = time.monotonic() - self.started
        done = job.processed - self.start_processed
        if elapsed <= 0 or done <= 0:
            return
        job.rate = round(done / elapsed, 2)
        job.eta_s = round((job.total - job.processed) / job.rate)


def metadata_values(meta: VideoMetadata) -> dict[str, Any]:
    return {
        "title": meta.title,
        "channel_title": meta.channel_title,
        "channel_id": meta.channel_id,
        "duration_s": meta.duration_s,
        "published_at": meta.published_at,
        "thumbnail_url": meta.thumbnail_url,
        "view_count": meta.view_count,
    }


@dataclass(frozen=True)
class BatchOutcome:
    """How many of the job's videos one batch's transaction moved out of `pending` (rows it changed)."""

    ready: int = 0
    failed: int = 0


async def apply_fetch_result(
    session: AsyncSession, job_id: UUID, batch: dict[str, UUID], result: FetchResult
) -> BatchOutcome:
    """Write a batch's outcome by primary key (`batch` maps youtube id → video row id). Only the videos
    still pending for this job are written (not those cancelled, moved to a retry, or done by another run
    of the job); they are locked first, so the counts returned are exactly the rows changed."""
    connection = await session.connection()
    locked = await connection.exec_driver_sql(
        queries["lock_pending_of_batch"], (job_id, list(batch.values()))
    )
    pending = {row_id for (row_id,) in locked}
    now = datetime.now(UTC)
    ready = [
        {"b_id": batch[yid], **metadata_values(meta), "status": VideoStatus.READY.value, "error": None}
        for yid, meta in result.found.items()
        if batch[yid] in pending
    ]
    reasons = list(result.unavailable.items()) + [
        (yid, f"temporarily unavailable, retry later: {reason}") for yid, reason in result.transient.items()
    ]
    failed = [
        {"b_id": batch[yid], "status": VideoStatus.FAILED.value, "error": job_service.bound(why, ERROR_MAX)}
        for yid, why in reasons
        if batch[yid] in pending
    ]
    by_primary_key = (Video.id == bindparam("b_id"), Video.job_id == job_id)
    if ready:
        await connection.execute(
            update(VIDEOS)
            .where(*by_primary_key)
            .values(**{k: bindparam(k) for k in ready[0] if k != "b_id"}, updated_at=now),
            ready,
        )
    if failed:
        await connection.execute(
            update(VIDEOS)
            .where(*by_primary_key)
            .values(status=bindparam("status"), error=bindparam("error"), updated_at=now),
            failed,
        )
    return BatchOutcome(ready=len(ready), failed=len(failed))


async def lock_job(session: AsyncSession, job_id: UUID) -> Job | None:
    job: Job | None = await session.scalar(
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    )
    return job


async def pending_batch(
    session: AsyncSession, job_id: UUID, size: int, *, after: UUID | None = None
) -> dict[str, UUID]:
    """The next pending videos of the job past row id `after`: youtube id → row id (unique in a list)."""
    conditions = [Video.job_id == job_id, Video.status == VideoStatus.PENDING.value]
    if after is not None:
        conditions.append(Video.id > after)
    rows = await session.execute(
        select(Video.youtube_id, Video.id).where(*conditions).order_by(Video.id).limit(size)
    )
    return dict(rows.tuples().all())


def progress_message(job: Job) -> str:
    text = f"Fetched {job.processed} of {plural(job.total, 'video')}"
    if job.failed:
        text += f" ({job.failed} failed)"
    return text


@dataclass
class JobRunner:
    """Runs one job to a terminal state (or until the process dies; then a rerun resumes)."""

    sessions: async_sessionmaker[AsyncSession]
    source: MetadataSource
    progress_interval_s: float

    async def run(self, job_id: UUID) -> str:
        """Fetch batch N+1 while batch N commits, so a job moves at the API's pace, not API + database."""
        pace = Pace(interval_s=self.progress_interval_s)
        if not await self.start(job_id, pace):
            return "skipped"
        while True:
            batch, stop = await self.next_batch(job_id, after=None)
            fetching = self.fetch_soon(batch)
            try:
                while fetching is not None:
                    try:
                        result = await fetching
                    except YouTubeError as exc:
                        return await self.fail(job_id, str(exc))
                    upcoming, stop = await self.next_batch(job_id, after=max(batch.values()))
                    fetching = self.fetch_soon(upcoming)
                    await self.commit_batch(job_id, batch, result, pace)
                    batch = upcoming
            finally:
                if fetching is not None and not fetching.done():
                    fetching.cancel()
                    await asyncio.gather(fetching, return_exceptions=True)
            # The keyset only moves forward: before declaring the job done, look once more from the start.
            if stop != self.finish or not await self.has_pending(job_id):
                return await stop(job_id)

    def fetch_soon(self, batch: dict[str, UUID]) -> asyncio.Task[FetchResult] | None:
        return asyncio.create_task(self.source.fetch(list(batch))) if batch else None

    async def next_batch(
        self, job_id: UUID, *, after: UUID | None
    ) -> tuple[dict[str, UUID], Callable[[UUID], Awaitable[str]]]:
        """The next pending videos past `after` (keyset on id: the batch in flight is not yet committed),
        and how the job ends if there are none: finished, cancelled or gone."""
        async with self.sessions() as session:
            job = await session.get(Job, job_id, populate_existing=True)
            if job is None:
                return {}, self.gone
            if job.cancel_requested:
                return {}, self.cancel
            batch = await pending_batch(session, job_id, self.source.batch_size, after=after)
        return batch, self.finish

    async def has_pending(self, job_id: UUID) -> bool:
        async with self.sessions() as session:
            return bool(await pending_batch(session, job_id, 1))

    async def gone(self, job_id: UUID) -> str:
        log.info("job %s was deleted while running", job_id)
        return "deleted"

    async def start(self, job_id: UUID, pace: Pace) -> bool:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                log.info("job %s is %s; nothing to run", job_id, "gone" if job is None else job.status)
                return False
            job_service.apply_counts(job, await job_service.video_counts(session, job_id))
            pace.start_processed = job.processed
            resumed = job.status == JobStatus.RUNNING.value
            job.status = JobStatus.RUNNING.value
            job.started_at = job.started_at or datetime.now(UTC)
            job.message = "Resuming" if resumed else f"Fetching metadata for {plural(job.total, 'video')}"
            await job_service.write_event(session, job)
            pace.sent(job)
        log.info(
            "job %s %s (%d of %d done)", job_id, "resumed" if resumed else "started", job.processed, job.total
        )
        return True

    async def commit_batch(
        self, job_id: UUID, batch: dict[str, UUID], result: FetchResult, pace: Pace
    ) -> None:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value or job.list_id is None:
                return  # cancelled, or its list deleted (the next round ends it as cancelled)
            outcome = await apply_fetch_result(session, job_id, batch, result)
            # The job's counts move by the rows this transaction changed (under the job's lock), and are
            # recounted from `videos` for every event: a recount reads all of the job's videos, which
            # would make a 50,000-video job quadratic if every batch did it.
            job.processed += outcome.ready + outcome.failed
            job.failed += outcome.failed
            if pace.due(job):
                job_service.apply_counts(job, await job_service.video_counts(session, job_id))
            pace.update_rate(job)
            job.message = progress_message(job)
            errors = list(result.unavailable.items()) + list(result.transient.items())
            if errors:
                youtube_id, reason = errors[-1]
                job.last_error = job_service.bound(f"{youtube_id}: {reason}", ERROR_MAX)
            if pace.due(job):
                await job_service.write_event(session, job, error=job.last_error if errors else None)
                pace.sent(job)

    async def finish(self, job_id: UUID) -> str:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value:
                return "gone"
            job_service.apply_counts(job, await job_service.video_counts(session, job_id))
            job.status = (JobStatus.COMPLETED_WITH_ERRORS if job.failed else JobStatus.COMPLETED).value
            job.eta_s = 0
            job.finished_at = datetime.now(UTC)
            job.message = job_service.bound(
                f"Done: {job.processed - job.failed} ready, {job.failed} failed of {job.total}", MESSAGE_MAX
            )
            await job_service.write_event(session, job, error=job.last_error if job.failed else None)
            log.info("job %s %s%s: %s", job_id, job.status, ran_for(job), job.message)
            return job.status

    async def fail(self, job_id: UUID, message: str) -> str:
        """A job-stopping error (quota, bad key): the untouched videos stay pending for a later retry."""
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value:
                return "gone"
            job_service.apply_counts(job, await job_service.video_counts(session, job_id))
            job.status = JobStatus.FAILED.value
            job.eta_s = None
            job.finished_at = datetime.now(UTC)
            job.message = job_service.bound(message, MESSAGE_MAX)
            job.last_error = job_service.bound(message, ERROR_MAX)
            await job_service.write_event(session, job, error=job.last_error)
            log.warning("job %s failed%s: %s", job_id, ran_for(job), message)
            return job.status

    async def cancel(self, job_id: UUID) -> str:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                return "gone"
            await job_service.finish_cancelled(
                session, job, f"Cancelled after {job.processed} of {job.total}"
            )
            log.info("job %s cancelled%s: %s", job_id, ran_for(job), job.message)
            return job.status


def ran_for(job: Job) -> str:
    """The job's run time for a log line (" after 12.3 s"), counted from its first start."""
    if job.started_at is None or job.finished_at is None:
        return ""
    return f" after {(job.finished_at - job.started_at).total_seconds():.1f} s"
