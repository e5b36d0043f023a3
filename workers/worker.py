"""The SAQ worker: task functions, cron jobs and the factory that wires them to the settings.

Run it with `bookmarks workers run` (any number of processes, on any machine that reaches Postgres), or
in-process under `bookmarks run` (single-machine mode, `RUN_WORKERS_IN_WEB`, on by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

import httpx
from saq import CronJob, Worker
from saq import Job as SaqJob
from saq.queue.postgres import PostgresQueue
from saq.types import Context as SaqContext
from saq.types import PartialTimersDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.services import jobs as job_service
from app.services import quota as quota_service
from app.services.errors import Conflict
from app.settings import Settings
from app.wording import plural
from db.models import BookmarkList, Job, JobKind, JobStatus, RefreshSchedule
from db.queries import queries
from workers.processing import FetchWork, JobRunner, Work
from workers.queue import PROCESS_JOB, JobQueue, make_saq_queue
from workers.refresh import RefreshWork
from workers.youtube import YouTubeClient

log = logging.getLogger(__name__)


class Context(SaqContext, total=False):
    """SAQ's context (`worker`, `job`) plus what `startup` puts there for the tasks."""

    settings: Settings
    engine: AsyncEngine
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    youtube: YouTubeClient


PRUNE_BATCH = 10_000
RETRY_BATCH = 100
SCHEDULED_BATCH = 100
STRANDED_AFTER_S = 60
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
OEMBED_CONCURRENCY = 8


_FETCH = FetchWork()
WORKS: dict[str, Work] = {
    JobKind.IMPORT: _FETCH,
    JobKind.ADD: _FETCH,
    JobKind.RETRY: _FETCH,
    JobKind.REFRESH: RefreshWork(),
}
"""What each kind of job does inside the one runner."""


async def process_job(ctx: Context, *, job_id: str) -> str:
    runner = JobRunner(
        sessions=ctx["sessions"],
        source=ctx["youtube"],
        progress_interval_s=ctx["settings"].progress_interval_ms / 1000,
        works=WORKS,
        daily_quota=ctx["settings"].youtube_daily_quota,
    )
    beat_s = ctx["settings"].job_heartbeat_s / 3
    beating = asyncio.create_task(
        heartbeat(ctx["job"], ctx["sessions"], UUID(job_id), beat_s), name=f"heartbeat-{job_id}"
    )
    try:
        return await runner.run_until_done(UUID(job_id))
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)


async def heartbeat(
    saq_job: SaqJob, sessions: async_sessionmaker[AsyncSession], job_id: UUID, every_s: float
) -> None:
    """Touch the SAQ job while it runs, so SAQ's sweep can tell a slow job from a dead worker, and the
    job row, so /api/health and /metrics can tell a stalled job (running, no live worker) from a busy one.

    A failed touch (the database restarting) must not end the heartbeat: the job would then look dead
    and be swept while this worker is still running it.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            await saq_job.update()
            async with sessions() as session, session.begin():
                await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
                    .values(heartbeat_at=func.now())
                )
        except Exception as exc:
            log.warning("heartbeat for job %s failed (will retry): %s", saq_job.key, exc)


async def prune_progress_events(ctx: Context) -> int:
    """Retention: events older than PROGRESS_RETENTION_DAYS go, in batches, oldest first."""
    settings: Settings = ctx["settings"]
    horizon = datetime.now(UTC) - timedelta(days=settings.progress_retention_days)
    deleted = 0
    while True:
        async with ctx["sessions"]() as session, session.begin():
            connection = await session.connection()
            result = await connection.exec_driver_sql(
                queries["prune_progress_events"], (horizon, PRUNE_BATCH)
            )
            deleted += result.rowcount
        if result.rowcount < PRUNE_BATCH:
            break
    if deleted:
        log.info("pruned %d progress events older than %s", deleted, horizon.isoformat())
    return deleted


def job_queue_of(ctx: Context) -> JobQueue:
    """The queue a cron enqueues on: its worker's own."""
    return JobQueue(cast(PostgresQueue, ctx["worker"].queue), heartbeat_s=ctx["settings"].job_heartbeat_s)


async def requeue_stranded_jobs(ctx: Context) -> int:
    """Jobs committed but never enqueued (a crash in between), or whose SAQ job gave up: enqueue again.

    The SAQ key is the job id, so a job SAQ still runs is not enqueued twice.
    """
    job_queue = job_queue_of(ctx)
    async with ctx["sessions"]() as session:
        connection = await session.connection()
        rows = (await connection.exec_driver_sql(queries["stranded_jobs"], (STRANDED_AFTER_S,))).all()
    requeued = 0
    for (job_id,) in rows:
        if not await job_queue.is_known(job_id) and await job_queue.enqueue(job_id):
            requeued += 1
    if requeued:
        log.warning("re-enqueued %d stranded jobs", requeued)
    return requeued


async def retry_stopped_jobs(ctx: Context) -> int:
    """Jobs a job-level cause (outage, bad key) stopped, whose automatic retry is due: a new `retry` job
    takes their leftovers (workers/processing.py, AUTO_RETRY_DELAYS_S)."""
    job_queue = job_queue_of(ctx)
    started: list[UUID] = []
    async with ctx["sessions"]() as session, session.begin():
        due = await session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.FAILED.value,
                Job.next_attempt_at <= func.now(),
                # A cancel is the person's word: what it left behind waits for their Retry.
                Job.cancel_requested.is_(False),
            )
            .order_by(Job.next_attempt_at)
            .limit(RETRY_BATCH)
            .with_for_update(skip_locked=True)
        )
        for old in due:
            try:
                retry = await job_service.retry_leftovers(session, old, automatic=True)
            except Conflict as exc:  # a refresh with nothing left, or its list being checked already
                log.info("no automatic retry of job %s: %s", old.id, exc.detail)
                continue
            if retry is not None:
                started.append(retry.id)
    # Committed first, enqueued after (SAQ writes on its own connections); a lost enqueue is stranded
    # and the stranded-job cron picks it up.
    for job_id in started:
        await job_queue.enqueue(job_id)
    if started:
        log.info("started %d automatic retries of stopped jobs", len(started))
    return len(started)


async def refresh_scheduled_lists(ctx: Context) -> int:
    """Lists whose weekly or monthly availability check is due: a `refresh` job each (a list already
    being checked, or with nothing to check, is just due again one interval later)."""
    job_queue = job_queue_of(ctx)
    started: list[UUID] = []
    async with ctx["sessions"]() as session, session.begin():
        connection = await session.connection()
        due = (await connection.exec_driver_sql(queries["due_scheduled_refreshes"], (SCHEDULED_BATCH,))).all()
        for list_id, user_id, schedule in due:
            try:
                async with session.begin_nested():
                    job = await job_service.create_refresh(
                        session, user_id, list_id, job_service.SCHEDULED_REFRESH_SOURCE
                    )
            except Conflict as exc:
                log.info("scheduled check of list %s skipped: %s", list_id, exc.detail)
                await session.execute(
                    update(BookmarkList)
                    .where(BookmarkList.id == list_id)
                    .values(
                        next_refresh_at=func.now() + job_service.SCHEDULE_INTERVALS[RefreshSchedule(schedule)]
                    )
                )
                continue
            started.append(job.id)
    for job_id in started:
        await job_queue.enqueue(job_id)
    if started:
        log.info("started %d scheduled availability checks", len(started))
    return len(started)


def make_spend(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Callable[[], Awaitable[None]]:
    """One quota unit per Data API request, counted for every worker (raises QuotaReached past the
    day's budget)."""

    async def spend() -> None:
        async with sessions() as session, session.begin():
            await quota_service.spend(session, settings.youtube_daily_quota)

    return spend


def make_worker(settings: Settings) -> Worker[Context]:
    async def startup(ctx: Context) -> None:
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=settings.worker_concurrency + 2)
        http = httpx.AsyncClient(
            timeout=HTTP_TIMEOUT,
            limits=httpx.Limits(max_connections=OEMBED_CONCURRENCY * settings.worker_concurrency + 4),
        )
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["http"] = http
        ctx["sessions"] = async_sessionmaker(engine, expire_on_commit=False)
        ctx["youtube"] = YouTubeClient(
            http,
            api_key=settings.youtube_api_key,
            api_url=settings.youtube_api_url,
            oembed_url=settings.youtube_oembed_url,
            concurrency=OEMBED_CONCURRENCY,
            spend=make_spend(settings, ctx["sessions"]),
        )

    async def shutdown(ctx: Context) -> None:
        http: httpx.AsyncClient | None = ctx.get("http")
        if http is not None:
            await http.aclose()
        engine = ctx.get("engine")
        if engine is not None:
            await engine.dispose()

    return Worker(
        make_saq_queue(settings.dsn, max_connections=settings.worker_concurrency + 4),
        functions=[(PROCESS_JOB, process_job)],
        concurrency=settings.worker_concurrency,
        cron_jobs=[
            CronJob(requeue_stranded_jobs, cron="* * * * *", timeout=60),
            CronJob(retry_stopped_jobs, cron="* * * * *", timeout=60),
            CronJob(refresh_scheduled_lists, cron="*/10 * * * *", timeout=120),
            CronJob(prune_progress_events, cron="17 * * * *", timeout=600),
        ],
        startup=startup,
        shutdown=shutdown,
        # SAQ declares every timer key required although it fills in defaults for the missing ones.
        timers=cast(PartialTimersDict, {"sweep": settings.queue_sweep_s}),
    )


async def run_worker(settings: Settings) -> None:
    """A worker process's main: until SIGINT/SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    worker = InProcessWorker(make_worker(settings))
    await worker.start()
    try:
        await stopping.wait()
    finally:
        await worker.stop()


class InProcessWorker:
    """A SAQ worker running as a task of this process: the web process's (single-machine mode), or the
    whole of a `bookmarks workers run` process."""

    def __init__(self, worker: Worker[Context]) -> None:
        # SAQ installs SIGINT/SIGTERM handlers on start; inside uvicorn they would replace the server's own.
        worker.SIGNALS = []
        self.worker = worker
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.worker.queue.connect()
        self.task = asyncio.create_task(self.worker.start(), name="saq-worker")
        self.task.add_done_callback(self._report_crash)

    async def stop(self) -> None:
        """Stops at once: a running job is cancelled mid-batch and resumes from its last committed batch
        when a worker (this one restarted, or another) takes it again."""
        if self.task is None:
            return
        running = sorted(job.key for job in self.worker.job_task_contexts if job.function == PROCESS_JOB)
        if running:
            log.info(
                "stopping with %s running (%s): %s from the last committed batch when a worker runs again",
                plural(len(running), "job"),
                ", ".join(running),
                "it resumes" if len(running) == 1 else "they resume",
            )
        saq_log = logging.getLogger("saq")
        saq_log.addFilter(expected_cancellation)
        try:
            await self.worker.stop()
        finally:
            saq_log.removeFilter(expected_cancellation)
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.worker.queue.disconnect()

    @staticmethod
    def _report_crash(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the in-process worker stopped", exc_info=task.exception())


def expected_cancellation(record: logging.LogRecord) -> bool:
    """SAQ's stop gives its tasks the grace period we set (none), cancels them and warns that they did not
    finish: on a deliberate stop that is the plan, and `InProcessWorker.stop` has said what it means."""
    return not record.getMessage().startswith("Some tasks did not finish within the shutdown grace period")
