"""Measures one large import end to end; a script, not a test (no timing is asserted anywhere).

One `bookmarks workers run` process (Data API mode) against the fake YouTube at a given latency, in a
fresh migrated database that is dropped afterwards. Prints the wall time from the import request
(`POST /api/lists/{id}/imports`) to the job's terminal state and how many progress events the job wrote.

    /work/.venv-main/bin/python -m tests.integration.workers.measure_large_import --videos 5000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app import database
from app.asgi import create_app
from app.settings import Settings, replace_database
from testkit.accounts import create_account
from testkit.fake_youtube import FakeYouTube
from tests.conftest import ADMIN_DSN, admin_execute
from tests.integration.workers.conftest import (
    WorkerProcesses,
    create_list,
    fetch_all,
    import_ids,
    poll_until,
    video_ids,
    wait_for_terminal,
    worker_settings,
)
from workers.queue import JobQueue, make_saq_queue


async def wait_for_a_worker(settings: Settings) -> None:
    queue = JobQueue(make_saq_queue(settings.dsn, max_connections=2), heartbeat_s=settings.job_heartbeat_s)
    await queue.connect()
    try:
        await poll_until(queue.ping, lambda info: info["workers"] >= 1, timeout_s=60, what="a worker")
    finally:
        await queue.disconnect()


async def measure(videos: int, latency_ms: float, progress_interval_ms: int) -> None:
    name = f"bm_measure_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    settings = Settings(database_url=replace_database(ADMIN_DSN, name), run_workers_in_web=False)
    engine = create_async_engine(settings.sqlalchemy_url)
    processes = WorkerProcesses(Path(tempfile.mkdtemp(prefix="measure-")))
    try:
        await asyncio.to_thread(database.upgrade, settings)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        account = await create_account(sessions, "measure@example.com")
        with FakeYouTube(latency_ms=latency_ms) as youtube:
            config = replace(
                worker_settings(settings, youtube, progress_interval_ms=progress_interval_ms),
                worker_concurrency=1,
            )
            processes.start(config)
            await wait_for_a_worker(settings)
            async with AsyncTestClient(app=create_app(settings)) as client:
                list_id = await create_list(client, account, "Measure")
                started = time.perf_counter()
                job_id = await import_ids(client, account, list_id, video_ids(videos))
                job = await wait_for_terminal(sessions, job_id, timeout_s=3600)
                wall_s = time.perf_counter() - started
            api_requests = youtube.stats()["api_requests"]
        events = await fetch_all(
            sessions, "SELECT count(*) AS n FROM progress_events WHERE job_id = :id", id=job_id
        )
        run_s = (job["finished_at"] - job["started_at"]).total_seconds()
        print(f"videos={videos} latency_ms={latency_ms:g} progress_interval_ms={progress_interval_ms}")
        print(f"status={job['status']} processed={job['processed']} failed={job['failed']}")
        print(f"wall time (import request to terminal state): {wall_s:.2f} s")
        print(f"job started_at to finished_at: {run_s:.2f} s ({videos / run_s:.0f} videos/s)")
        print(f"progress events written: {events[0]['n']}; Data API requests: {api_requests}")
    finally:
        processes.stop_all()
        await engine.dispose()
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--progress-interval-ms", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(measure(args.videos, args.latency_ms, args.progress_interval_ms))


if __name__ == "__main__":
    main()
