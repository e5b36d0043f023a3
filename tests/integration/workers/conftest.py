"""Fixtures and helpers for the job-processing tests: the fake YouTube, SAQ workers (in this event loop or
as `bookmarks workers run` processes), and readers of what a job left in `jobs`, `videos` and
`progress_events`.

Every wait is bounded: conditions are polled every `POLL_S` until a deadline, never slept for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from saq import Worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from db.events import ProgressEvent
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from workers.worker import Context, make_worker

Client = AsyncTestClient[Litestar]
Sessions = async_sessionmaker[AsyncSession]
T = TypeVar("T")

WAIT_S = 30.0
"""Deadline of one wait for a job state (generous: a loaded CI box, never reached when all is well)."""
POLL_S = 0.05
TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})
BOOKMARKS = Path(sys.executable).with_name("bookmarks")
METADATA_FIELDS = ("title", "channel_title", "duration_s", "thumbnail_url", "view_count", "published_at")


# ---- ids the fake knows: `vid` listed, `prv` private, `del` deleted, `liv` live, `hid` hidden views ----


def video_ids(count: int, *, kind: str = "vid", start: int = 0) -> list[str]:
    """`count` distinct 11-character ids of one kind of the fake's catalog."""
    assert len(kind) == 3
    return [f"{kind}{number:08d}" for number in range(start, start + count)]


def mixed_ids(total: int, *, private: int, deleted: int, live: int = 0, hidden: int = 0) -> list[str]:
    """`total` distinct ids, the unavailable and odd ones spread through the list (deterministically)."""
    kinds = ["prv"] * private + ["del"] * deleted + ["liv"] * live + ["hid"] * hidden
    kinds += ["vid"] * (total - len(kinds))
    random.Random(total).shuffle(kinds)
    return [f"{kind}{number:08d}" for number, kind in enumerate(kinds)]


def is_unavailable(youtube_id: str) -> bool:
    return youtube_id.startswith(("prv", "del"))


# ---- settings and the fake ----


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube(latency_ms=0) as fake:
        yield fake


def worker_settings(
    settings: Settings, yt: FakeYouTube, *, api: bool = True, progress_interval_ms: int = 250
) -> Settings:
    """The test database's settings pointed at the fake (Data API mode with its key, else oEmbed)."""
    return replace(
        settings,
        youtube_api_key=yt.api_key if api else None,
        youtube_api_url=yt.api_url,
        youtube_oembed_url=yt.oembed_url,
        progress_interval_ms=progress_interval_ms,
    )


# ---- workers ----

StartWorker = Callable[[Settings], Awaitable[Worker[Context]]]


@pytest.fixture
async def start_worker() -> AsyncIterator[StartWorker]:
    """Starts SAQ workers as tasks of the test's event loop; stops them (and surfaces crashes) at the end."""
    running: list[tuple[Worker[Context], asyncio.Task[None]]] = []

    async def start(worker_config: Settings) -> Worker[Context]:
        worker = make_worker(worker_config)
        worker.SIGNALS = []  # SAQ would otherwise take SIGINT/SIGTERM from pytest
        await worker.queue.connect()
        task = asyncio.create_task(worker.start(), name="test-saq-worker")
        running.append((worker, task))

        async def started() -> bool:
            if task.done():
                task.result()  # the startup failed: raise its error here
            return "sessions" in worker.context

        await poll_until(started, bool, what="the worker's startup")
        return worker

    try:
        yield start
    finally:
        for worker, task in reversed(running):
            await worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, WAIT_S)
            await worker.queue.disconnect()


def worker_env(worker_config: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": worker_config.dsn,
        "YOUTUBE_API_URL": worker_config.youtube_api_url,
        "YOUTUBE_OEMBED_URL": worker_config.youtube_oembed_url,
        "YOUTUBE_DAILY_QUOTA": str(worker_config.youtube_daily_quota),
        "PROGRESS_INTERVAL_MS": str(worker_config.progress_interval_ms),
        "WORKER_CONCURRENCY": str(worker_config.worker_concurrency),
        "JOB_HEARTBEAT_S": str(worker_config.job_heartbeat_s),
        "QUEUE_SWEEP_S": str(worker_config.queue_sweep_s),
        "RUN_WORKERS_IN_WEB": "false",
    }
    env.pop("YOUTUBE_API_KEY", None)
    if worker_config.youtube_api_key:
        env["YOUTUBE_API_KEY"] = worker_config.youtube_api_key
    return env


@dataclass
class WorkerProcesses:
    """`bookmarks workers run` processes; each one's output goes to a log file shown when a test fails."""

    log_dir: Path
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, worker_config: Settings) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"worker-{len(self.started) + 1}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(BOOKMARKS), "workers", "run"],
                env=worker_env(worker_config),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log_path))
        return process

    def logs(self, tail: int = 40) -> str:
        """The last lines of every worker's output."""
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-tail:])
            for _, path in self.started
        )

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[WorkerProcesses]:
    """`bookmarks workers run` processes, all stopped at the end; their output shows when a test fails."""
    processes = WorkerProcesses(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
        print(processes.logs())  # captured: pytest shows it only for a failed test


# ---- the API ----


async def create_list(client: Client, account: Account, name: str) -> str:
    response = await client.post("/api/lists", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.text
    list_id: str = response.json()["id"]
    return list_id


async def import_ids(client: Client, account: Account, list_id: str, ids: Iterable[str]) -> UUID:
    """Import bare ids as pasted links; returns the queued job's id."""
    ids = list(ids)
    response = await client.post(
        f"/api/lists/{list_id}/imports",
        content="\n".join(ids).encode(),
        headers={**account.headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(ids), body
    return UUID(body["job"]["id"])


async def post_job_action(client: Client, account: Account, job_id: UUID, action: str) -> dict[str, Any]:
    response = await client.post(f"/api/jobs/{job_id}/{action}", headers=account.headers)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- the tables ----


async def fetch_all(sessions: Sessions, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with sessions() as session:
        result = await session.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]


async def execute(sessions: Sessions, sql: str, **params: Any) -> None:
    """One statement in its own committed transaction."""
    async with sessions() as session, session.begin():
        await session.execute(text(sql), params)


async def job_row(sessions: Sessions, job_id: UUID) -> dict[str, Any]:
    rows = await fetch_all(sessions, "SELECT * FROM jobs WHERE id = :id", id=job_id)
    assert rows, f"job {job_id} does not exist"
    return rows[0]


async def job_videos(sessions: Sessions, job_id: UUID) -> dict[str, dict[str, Any]]:
    """The job's videos by YouTube id."""
    rows = await fetch_all(sessions, "SELECT * FROM videos WHERE job_id = :id", id=job_id)
    return {row["youtube_id"]: row for row in rows}


async def job_events(sessions: Sessions, job_id: UUID) -> list[dict[str, Any]]:
    """The job's progress events (their `data`, which carries `seq`), in seq order."""
    rows = await fetch_all(
        sessions, "SELECT seq, data FROM progress_events WHERE job_id = :id ORDER BY seq", id=job_id
    )
    for row in rows:
        assert row["data"]["seq"] == row["seq"]
    return [row["data"] for row in rows]


async def user_seqs(sessions: Sessions, user_id: UUID) -> list[int]:
    rows = await fetch_all(
        sessions, "SELECT seq FROM progress_events WHERE user_id = :id ORDER BY seq", id=user_id
    )
    return [row["seq"] for row in rows]


async def poll_until(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float = WAIT_S, what: str
) -> T:
    """Calls `probe` every POLL_S until `done(value)`; fails with the last value after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if done(value):
            return value
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}; last seen: {value!r}")
        await asyncio.sleep(POLL_S)


async def wait_for_terminal(sessions: Sessions, job_id: UUID, *, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """The job row once its status is terminal."""
    return await poll_until(
        lambda: job_row(sessions, job_id),
        lambda job: job["status"] in TERMINAL,
        timeout_s=timeout_s,
        what=f"job {job_id} to finish",
    )


async def assert_counts_match_videos(sessions: Sessions, job: dict[str, Any]) -> dict[str, int]:
    """The job row's total/processed/failed are exactly what its videos say; returns the status counts."""
    rows = await fetch_all(
        sessions,
        "SELECT status, count(*) AS n FROM videos WHERE job_id = :id GROUP BY status",
        id=job["id"],
    )
    counts = {row["status"]: row["n"] for row in rows}
    ready, failed = counts.get("ready", 0), counts.get("failed", 0)
    assert (job["total"], job["processed"], job["failed"]) == (sum(counts.values()), ready + failed, failed)
    return counts


def assert_progress_stream(
    events: list[dict[str, Any]], job: dict[str, Any], *, interval_s: float | None = None
) -> None:
    """A job's events: `running` first, `processed` never decreasing, only the last one terminal and equal
    to the job row; with `interval_s`, intermediate events are at least that far apart."""
    assert events, "the job wrote no progress event"
    assert all(set(event) == set(ProgressEvent.__struct_fields__) for event in events), "not the event shape"
    assert events[0]["status"] == "running"
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs))
    processed = [event["processed"] for event in events]
    assert processed == sorted(processed), processed
    assert all(event["status"] == "running" for event in events[:-1]), [e["status"] for e in events]
    last = events[-1]
    assert last["status"] == job["status"]
    counts = ("processed", "failed", "total")
    assert [last[name] for name in counts] == [job[name] for name in counts]
    assert job["last_seq"] == last["seq"]
    assert all(event["job_id"] == str(job["id"]) for event in events)
    if interval_s is not None:
        times = [datetime.fromisoformat(event["at"]) for event in events[:-1]]
        # `at` has millisecond precision; the worker measures the interval just after its insert.
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
        assert all(gap >= interval_s - 0.02 for gap in gaps), gaps
