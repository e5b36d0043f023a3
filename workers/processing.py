"""Running one job: fetch its pending videos in batches and commit each batch with the job's state.

Each batch is ONE transaction: the video rows, the job row (its counts moved by exactly the rows the batch
changed, and recounted from `videos` for every event) and, when due, one progress event. So the live
stream, the history and the tables can never disagree, and a worker killed mid-batch loses only that
uncommitted batch: the rerun picks up the videos still `pending`.

A job never stays `running` (docs/design.md, "Jobs"):
- a value the database refuses fails that one video (the batch is written again row by row);
- a failed attempt (an unexpected error) waits JOB_RETRY_DELAYS_S, then runs again; `jobs.attempts`
  counts the runs since the job last made progress, every path that starts a run (this wait, SAQ's
  retry of a dead worker's job, the stranded-job cron) counts, and past MAX_ATTEMPTS the job ends
  `failed` with its cause;
- a job-level stop (bad key, YouTube unreachable) ends it `failed` with its untouched videos `pending`,
  and AUTO_RETRY_DELAYS_S says when a cron retries them (workers/worker.py);
- the daily YouTube quota spent (our budget, or YouTube's `quotaExceeded`) makes it `waiting`: it holds no
  worker until the quota resets, then the stranded-job cron runs it again from where it stopped.

Every kind of job runs here: what differs between fetching new videos (import, add, retry) and checking
a list's videos again (refresh, workers/refresh.py) is a `Work`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.services import jobs as job_service
from app.services import quota as quota_service
from app.services.quota import QuotaReached
from app.wording import plural
from db.models import ERROR_MAX, MESSAGE_MAX, Job, JobStatus, Video, VideoStatus
from db.queries import queries
from workers.youtube import FetchResult, VideoMetadata, YouTubeError, YouTubeUnreachable

log = logging.getLogger(__name__)
VIDEOS = cast(Table, Video.__table__)

JOB_RETRY_DELAYS_S: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 240.0)
"""The waits after a failed attempt: 470 s in all, then the job ends `failed` with its cause."""
MAX_ATTEMPTS: Final = len(JOB_RETRY_DELAYS_S) + 1
AUTO_RETRY_DELAYS_S: Final = (300.0, 900.0, 3600.0)
"""After a job-level stop (outage, bad key), its leftovers are retried by a cron this long after each stop
(a spent quota does not stop a job: it waits, `wait_for_quota`)."""
CANCEL_POLL_S: Final = 1.0
"""How often a job waiting between attempts looks whether it was cancelled (the API ends such a job at
once; the poll only frees the worker's slot)."""


QUOTA_REASONS: Final = frozenset({"quotaExceeded", "dailyLimitExceeded"})
"""YouTube's own word that the day's quota is spent: the job waits for the reset like at our budget."""


class MetadataSource(Protocol):
    @property
    def batch_size(self) -> int: ...

    async def fetch(self, ids: list[str]) -> FetchResult: ...


@dataclass(frozen=True)
class Applied:
    """What one batch's transaction did to the job (its counts are moved by the Work that applied it)."""

    done: int
    """Videos of the batch the job is now done with (fetched, or checked): progress."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(youtube id, reason) of what went wrong, in order: the last one is the job's `last_error`."""


class Work(Protocol):
    """What one kind of job does inside the shared runner: which videos make its next batch, how a
    batch's answer is written and counted, how its counts are recounted, and what its messages say."""

    async def recount(self, session: AsyncSession, job: Job) -> None:
        """Set the (locked) job's counts from the tables."""

    async def next_batch(
        self, session: AsyncSession, job: Job, size: int, *, after: UUID | None
    ) -> dict[str, UUID]:
        """Up to `size` videos still to do, past row id `after` (None: from where the job stands):
        youtube id → row id, in row id order."""

    async def apply(
        self, session: AsyncSession, job: Job, batch: dict[str, UUID], result: FetchResult
    ) -> Applied:
        """Write the batch's answer and move the (locked) job's counts by exactly what was written."""

    def start_message(self, job: Job) -> str: ...

    def progress_message(self, job: Job) -> str: ...

    def outcome_message(self, job: Job) -> str: ...

    def cancelled_message(self, job: Job) -> str: ...


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
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(youtube id, reason) of the videos whose metadata the database refused: they failed instead."""


def in_batch_order(batch: dict[str, UUID], reasons: dict[str, str]) -> list[tuple[str, str]]:
    """(youtube id, reason) in the batch's order: the same videos give the same last error, whichever
    answer came back last."""
    return [(youtube_id, reasons[youtube_id]) for youtube_id in batch if youtube_id in reasons]


class FetchWork:
    """Import, add and retry: fetch the job's `pending` videos; each becomes `ready` or `failed`."""

    async def recount(self, session: AsyncSession, job: Job) -> None:
        job_service.apply_counts(job, await job_service.video_counts(session, job.id))

    async def next_batch(
        self, session: AsyncSession, job: Job, size: int, *, after: UUID | None
    ) -> dict[str, UUID]:
        return await pending_batch(session, job.id, size, after=after)

    async def apply(
        self, session: AsyncSession, job: Job, batch: dict[str, UUID], result: FetchResult
    ) -> Applied:
        outcome = await apply_fetch_result(session, job.id, batch, result)
        job.processed += outcome.ready + outcome.failed
        job.failed += outcome.failed
        reasons = result.unavailable | result.unreadable | result.transient | dict(outcome.refused)
        return Applied(done=outcome.ready + outcome.failed, errors=in_batch_order(batch, reasons))

    def start_message(self, job: Job) -> str:
        return f"Fetching metadata for {plural(job.total, 'video')}"

    def progress_message(self, job: Job) -> str:
        return progress_message(job)

    def outcome_message(self, job: Job) -> str:
        return outcome_message(job)

    def cancelled_message(self, job: Job) -> str:
        return f"Cancelled after {job.processed:,} of {plural(job.total, 'video')}"


def driver_error(exc: DBAPIError) -> BaseException:
    """The database driver's own error behind SQLAlchemy's wrapping of it (asyncpg's names the cause)."""
    if exc.orig is None:
        return exc
    return exc.orig.__cause__ or exc.orig


REFUSED_VALUE_CLASSES: Final = ("22", "23")
"""SQLSTATE classes of a value the database refuses: data exceptions (too long, out of range, a NUL) and
integrity constraint violations (a CHECK, NOT NULL)."""


def is_refused_value(exc: DBAPIError) -> bool:
    sqlstate = getattr(driver_error(exc), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(REFUSED_VALUE_CLASSES)


def refusal_reason(exc: DBAPIError) -> str:
    """Why the database refused a video's row, for the person who sees it failed."""
    return f"YouTube sent metadata that could not be stored ({type(driver_error(exc)).__name__})"


def waiting(count: int) -> str:
    """ "1 video waits", "200 videos wait"."""
    return f"{plural(count, 'video')} {'waits' if count == 1 else 'wait'}"


async def apply_fetch_result(
    session: AsyncSession, job_id: UUID, batch: dict[str, UUID], result: FetchResult
) -> BatchOutcome:
    """Write a batch's outcome by primary key (`batch` maps youtube id → video row id). Only the videos
    still pending for this job are written (not those cancelled, moved to a retry, or done by another run
    of the job); they are locked first, so the counts returned are exactly the rows changed.

    The ready rows go in one statement; if the database refuses it, row by row, each in its savepoint,
    and a row it refuses fails that video alone."""
    connection = await session.connection()
    locked = await connection.exec_driver_sql(
        queries["lock_pending_of_batch"], (job_id, list(batch.values()))
    )
    pending = {row_id for (row_id,) in locked}
    ready = {
        yid: {"b_id": batch[yid], **metadata_values(meta), "status": VideoStatus.READY.value, "error": None}
        for yid, meta in result.found.items()
        if batch[yid] in pending
    }
    refused = await write_ready(connection, job_id, ready)
    reasons = (
        list(result.unavailable.items())
        + list(result.unreadable.items())
        + [(yid, f"temporarily unavailable, retry later: {why}") for yid, why in result.transient.items()]
        + refused
    )
    failed = [
        {"b_id": batch[yid], "status": VideoStatus.FAILED.value, "error": job_service.bound(why, ERROR_MAX)}
        for yid, why in reasons
        if batch[yid] in pending
    ]
    if failed:
        await connection.execute(
            update(VIDEOS)
            .where(Video.id == bindparam("b_id"), Video.job_id == job_id)
            .values(status=bindparam("status"), error=bindparam("error"), updated_at=datetime.now(UTC)),
            failed,
        )
    return BatchOutcome(ready=len(ready) - len(refused), failed=len(failed), refused=refused)


async def write_ready(
    connection: AsyncConnection, job_id: UUID, ready: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """Writes the ready rows; returns (youtube id, reason) for each row the database refused."""
    if not ready:
        return []
    statement = (
        update(VIDEOS)
        .where(Video.id == bindparam("b_id"), Video.job_id == job_id)
        .values(
            **{k: bindparam(k) for k in next(iter(ready.values())) if k != "b_id"},
            updated_at=datetime.now(UTC),
        )
    )
    return await write_rows(connection, job_id, statement, ready)


async def write_rows(
    connection: AsyncConnection, job_id: UUID, statement: Any, rows: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """Runs `statement` for every row (youtube id → parameters) in one go inside a savepoint; if the
    database refuses a value in it, row by row, each in its savepoint. Returns (youtube id, reason) of
    each refused row: a value the database refuses fails that one video, never its batch. Any other
    database error (a lost connection, a deadlock, a bug) is raised: it is no verdict on a row."""
    if not rows:
        return []
    try:
        async with connection.begin_nested():
            await connection.execute(statement, list(rows.values()))
        return []
    except DBAPIError as exc:
        if not is_refused_value(exc):
            raise
        log.warning("job %s: the database refused a batch (%s); writing it row by row", job_id, exc.orig)
    refused: list[tuple[str, str]] = []
    for youtube_id, row in rows.items():
        try:
            async with connection.begin_nested():
                await connection.execute(statement, [row])
        except DBAPIError as exc:
            if not is_refused_value(exc):
                raise
            log.warning("job %s: the database refused video %s: %s", job_id, youtube_id, exc.orig)
            refused.append((youtube_id, refusal_reason(exc)))
    return refused


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
    text = f"Fetched {job.processed:,} of {plural(job.total, 'video')}"
    if job.failed:
        text += f" ({job.failed:,} failed)"
    return text


def outcome_of(job: Job) -> JobStatus:
    """How a job whose videos are all done ended: a job whose videos all failed has failed."""
    if not job.failed:
        return JobStatus.COMPLETED
    return JobStatus.FAILED if job.failed == job.total else JobStatus.COMPLETED_WITH_ERRORS


def outcome_message(job: Job) -> str:
    ready = job.processed - job.failed
    if not job.failed:
        return "The video is ready" if job.total == 1 else f"All {plural(job.total, 'video')} ready"
    if not ready:
        return "The video failed" if job.total == 1 else f"All {plural(job.total, 'video')} failed"
    return f"{ready:,} ready, {job.failed:,} failed of {plural(job.total, 'video')}"


def attempt_cause(exc: BaseException) -> str:
    """A failed attempt's cause in one line (the traceback goes to the log); a database error by the
    driver's own error, not SQLAlchemy's wrapping of it."""
    label = type(exc).__name__
    cause: BaseException = exc
    if isinstance(exc, DBAPIError):
        cause = driver_error(exc)
        label = f"database error ({type(cause).__name__})"
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return job_service.bound(f"{label}: {first_line}" if first_line else label, 300) or ""


@dataclass
class JobRunner:
    """Runs one job to a terminal state, or to `waiting` for the quota (or until the process dies; then a
    rerun resumes)."""

    sessions: async_sessionmaker[AsyncSession]
    source: MetadataSource
    progress_interval_s: float
    works: dict[str, Work]
    """Each job kind's Work (workers/worker.py, WORKS)."""
    daily_quota: int
    """The budget to mark spent when YouTube says its quota is exhausted (YOUTUBE_DAILY_QUOTA)."""

    def work_for(self, job: Job) -> Work:
        return self.works[job.kind]

    async def run_until_done(self, job_id: UUID) -> str:
        """Runs the job; after a failed attempt waits and runs it again, until it ends (bounded)."""
        while True:
            try:
                return await self.run(job_id)
            except Exception as exc:
                # An unexpected error (a database hiccup, a bug): logged with its traceback, then the job
                # waits and tries again from its last committed batch, or ends `failed` past the bound.
                log.exception("job %s: an attempt failed", job_id)
                delay_s = await self.attempt_failed(job_id, attempt_cause(exc))
            if delay_s is None or not await self.wait_for_next_attempt(job_id, delay_s):
                return "stopped"

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
                    except QuotaReached as exc:
                        return await self.wait_for_quota(job_id, exc)
                    except YouTubeError as exc:
                        if exc.reason in QUOTA_REASONS:
                            return await self.wait_for_quota(job_id, await self.mark_quota_spent())
                        return await self.stop_at_job_level(job_id, exc)
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
            batch = await self.work_for(job).next_batch(session, job, self.source.batch_size, after=after)
        return batch, self.finish

    async def has_pending(self, job_id: UUID) -> bool:
        async with self.sessions() as session:
            job = await session.get(Job, job_id, populate_existing=True)
            return job is not None and bool(await self.work_for(job).next_batch(session, job, 1, after=None))

    async def gone(self, job_id: UUID) -> str:
        log.info("job %s was deleted while running", job_id)
        return "deleted"

    async def start(self, job_id: UUID, pace: Pace) -> bool:
        """Counts the attempt (committed on its own first: an error later in the start must still count,
        or a persistent one would rerun the job without bound); past MAX_ATTEMPTS (every path that
        reruns a job comes through here) the job ends `failed` with the cause of its last failure
        instead, and a job whose cancel was asked for ends `cancelled`."""
        if not await self.count_attempt(job_id):
            return False
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                log.info("job %s is %s; nothing to run", job_id, "gone" if job is None else job.status)
                return False
            work = self.work_for(job)
            await work.recount(session, job)
            if job.attempts > MAX_ATTEMPTS:
                await self.end_failed(session, job, self.gave_up_message(job), job.last_error)
                return False
            pace.start_processed = job.processed
            resumed = job.status != JobStatus.QUEUED.value
            job.status = JobStatus.RUNNING.value
            now = datetime.now(UTC)
            job.started_at = job.started_at or now
            job.heartbeat_at = now
            job.next_attempt_at = None
            job.message = "Resuming" if resumed else work.start_message(job)
            await job_service.write_event(session, job)
            pace.sent(job)
        log.info(
            "job %s %s (%d of %d done)", job_id, "resumed" if resumed else "started", job.processed, job.total
        )
        return True

    async def count_attempt(self, job_id: UUID) -> bool:
        """Counts one more attempt of the job, in its own transaction; False when there is nothing to
        run (the job is gone, terminal, or was cancelled: then it ends `cancelled` here)."""
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                log.info("job %s is %s; nothing to run", job_id, "gone" if job is None else job.status)
                return False
            if await self.end_if_cancel_requested(session, job):
                return False
            job.attempts += 1
        return True

    async def end_if_cancel_requested(self, session: AsyncSession, job: Job) -> bool:
        """Ends the (locked, not terminal) job `cancelled` if its cancel was asked for: whatever stopped
        the run (an outage, the quota, a failed attempt), a person's Cancel decides how it ends, and a
        cancelled job is never retried automatically."""
        if not job.cancel_requested:
            return False
        await job_service.finish_cancelled(session, job, self.work_for(job).cancelled_message(job))
        log.info("job %s cancelled%s: %s", job.id, ran_for(job), job.message)
        return True

    @staticmethod
    def gave_up_message(job: Job) -> str:
        return (
            f"Stopped after {plural(MAX_ATTEMPTS, 'attempt')} without progress; "
            f"{waiting(job.total - job.processed)} for a retry"
        )

    async def attempt_failed(self, job_id: UUID, cause: str) -> float | None:
        """Records a failed attempt: the job waits for its next one (the delay is returned), or past
        MAX_ATTEMPTS ends `failed` with the cause, or ends `cancelled` if that was asked for (None).
        A job whose start failed may still be `queued` or `waiting`: it waits between attempts as a
        `running` one does (the API cancels such a job at once)."""
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                return None
            if await self.end_if_cancel_requested(session, job):
                return None
            job.last_error = job_service.bound(cause, ERROR_MAX)
            job.status = JobStatus.RUNNING.value
            job.started_at = job.started_at or datetime.now(UTC)
            if job.attempts >= MAX_ATTEMPTS:
                await self.end_failed(session, job, self.gave_up_message(job), cause)
                return None
            delay_s = JOB_RETRY_DELAYS_S[max(job.attempts, 1) - 1]
            job.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay_s)
            job.eta_s = None
            job.message = f"Attempt {job.attempts} of {MAX_ATTEMPTS} failed; trying again shortly"
            await job_service.write_event(session, job, error=cause)
        log.warning("job %s: attempt %d failed (%s); next in %.0f s", job_id, job.attempts, cause, delay_s)
        return delay_s

    async def wait_for_next_attempt(self, job_id: UUID, delay_s: float) -> bool:
        """Waits for the next attempt; False as soon as the job ended meanwhile (cancelled: the API ends
        a waiting job itself)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay_s
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(CANCEL_POLL_S, left))
            async with self.sessions() as session:
                status = await session.scalar(select(Job.status).where(Job.id == job_id))
            if status != JobStatus.RUNNING.value:
                log.info("job %s ended while waiting for its next attempt (%s)", job_id, status)
                return False
        return True

    async def commit_batch(
        self, job_id: UUID, batch: dict[str, UUID], result: FetchResult, pace: Pace
    ) -> None:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value or job.list_id is None:
                return  # cancelled, or its list deleted (the next round ends it as cancelled)
            work = self.work_for(job)
            # The job's counts move by the rows this transaction changed (under the job's lock), and are
            # recounted from the tables for every event: a recount reads all of the job's videos, which
            # would make a 50,000-video job quadratic if every batch did it.
            outcome = await work.apply(session, job, batch, result)
            if outcome.done:
                job.attempts = 1  # progress: this run is the first since it, whatever came before
            # Decided once: an event always follows a recount, never counts that were not recounted.
            event_due = pace.due(job)
            if event_due:
                await work.recount(session, job)
            pace.update_rate(job)
            job.message = work.progress_message(job)
            if outcome.errors:
                youtube_id, reason = outcome.errors[-1]
                job.last_error = job_service.bound(f"{youtube_id}: {reason}", ERROR_MAX)
            if event_due:
                await job_service.write_event(session, job, error=job.last_error if outcome.errors else None)
                pace.sent(job)

    async def finish(self, job_id: UUID) -> str:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value:
                return "gone"
            work = self.work_for(job)
            await work.recount(session, job)
            job.status = outcome_of(job).value
            job.eta_s = 0
            job.finished_at = datetime.now(UTC)
            job.next_attempt_at = None
            job.message = job_service.bound(work.outcome_message(job), MESSAGE_MAX)
            await job_service.write_event(session, job, error=job.last_error if job.failed else None)
            log.info("job %s %s%s: %s", job_id, job.status, ran_for(job), job.message)
            return job.status

    async def stop_at_job_level(self, job_id: UUID, exc: YouTubeError) -> str:
        """A job-stopping error (bad key, API disabled, YouTube unreachable): the job ends `failed`, its
        untouched videos stay pending, and a cron retries them after AUTO_RETRY_DELAYS_S (while tries are
        left)."""
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value:
                return "gone"
            if await self.end_if_cancel_requested(session, job):
                return job.status
            await self.work_for(job).recount(session, job)
            retry_at = None
            if job.auto_retries < len(AUTO_RETRY_DELAYS_S):
                retry_at = datetime.now(UTC) + timedelta(seconds=AUTO_RETRY_DELAYS_S[job.auto_retries])
            if isinstance(exc, YouTubeUnreachable):
                cause, detail = "YouTube could not be reached", exc.last_failure
            else:
                cause = str(exc)[:1].upper() + str(exc)[1:]
                detail = f"YouTube API answered {exc.reason}" + (
                    f" (HTTP {exc.status})" if exc.status else ""
                )
            which = "the automatic" if retry_at else "a"
            message = f"{cause}: {waiting(job.total - job.processed)} for {which} retry"
            await self.end_failed(session, job, message, detail, retry_at=retry_at)
            return job.status

    @staticmethod
    async def end_failed(
        session: AsyncSession, job: Job, message: str, cause: str | None, *, retry_at: datetime | None = None
    ) -> None:
        """Ends the (locked, counted) job `failed`; its pending videos stay pending for a retry, which a
        cron starts at `retry_at` if given."""
        job.status = JobStatus.FAILED.value
        job.eta_s = None
        job.next_attempt_at = retry_at
        job.finished_at = datetime.now(UTC)
        job.message = job_service.bound(message, MESSAGE_MAX)
        job.last_error = job_service.bound(cause, ERROR_MAX)
        await job_service.write_event(session, job, error=job.last_error)
        log.warning("job %s failed%s: %s (%s)", job.id, ran_for(job), job.message, cause)

    async def mark_quota_spent(self) -> QuotaReached:
        """YouTube said its quota is exhausted: today's budget counts as spent, for every worker."""
        async with self.sessions() as session, session.begin():
            day = await quota_service.exhaust(session, self.daily_quota)
        return QuotaReached(self.daily_quota, day.resets_at)

    async def wait_for_quota(self, job_id: UUID, reached: QuotaReached) -> str:
        """The job becomes `waiting` until the quota resets, holding no worker; the stranded-job cron
        runs it again then (workers/worker.py), from its last committed batch. A wait is not a failed
        attempt, and a waiting job is cancelled at once (app/services/jobs.py)."""
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or job.status != JobStatus.RUNNING.value:
                return "gone"
            if await self.end_if_cancel_requested(session, job):
                return job.status
            await self.work_for(job).recount(session, job)
            job.status = JobStatus.WAITING.value
            job.next_attempt_at = reached.resets_at
            job.attempts = 0
            job.rate = None
            job.eta_s = None
            job.message = job_service.bound(
                f"The daily YouTube quota ({plural(reached.budget, 'unit')}) is used up: "
                f"{waiting(job.total - job.processed)} for it to reset at midnight Pacific time",
                MESSAGE_MAX,
            )
            await job_service.write_event(session, job)
        log.warning(
            "job %s waits for the YouTube quota to reset at %s", job_id, reached.resets_at.isoformat()
        )
        return JobStatus.WAITING.value

    async def cancel(self, job_id: UUID) -> str:
        async with self.sessions() as session, session.begin():
            job = await lock_job(session, job_id)
            if job is None or JobStatus(job.status).is_terminal:
                return "gone"
            await job_service.finish_cancelled(session, job, self.work_for(job).cancelled_message(job))
            log.info("job %s cancelled%s: %s", job_id, ran_for(job), job.message)
            return job.status


def ran_for(job: Job) -> str:
    """The job's run time for a log line (" after 12.3 s"), counted from its first start."""
    if job.started_at is None or job.finished_at is None:
        return ""
    return f" after {(job.finished_at - job.started_at).total_seconds():.1f} s"
