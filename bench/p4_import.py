"""P4 import: a 10,000-video import against the fake YouTube at 100 ms latency, end to end.

One web process and one `bookmarks workers run` process per mode (Data API: 50 ids a request, one
request at a time; oEmbed: one id a request, 8 at a time). The wall time runs from sending the import
POST to the terminal event arriving on a WebSocket. Two baselines, both in the same run:
- the API-bound minimum the brief defines: ceil(n / 50) x latency (API), n / 8 x latency (oEmbed);
- a measured floor: the worker's own `YouTubeClient` fetching a sample of the same batches from the same
  fake with no database and no queue, extrapolated to n (what HTTP costs here on top of the latency).
Events per second per job = the job's progress events / (finished_at - started_at).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from app.settings import Settings
from bench.common import (
    Account,
    Bench,
    Result,
    Server,
    Target,
    Worker,
    create_accounts,
    fmt,
    fmt_ratio,
    log_path,
    ratio,
    summary,
    trace,
)
from bench.p1_latency import connect_ready
from testkit.fake_youtube import FakeYouTube
from testkit.harness import app_env
from workers.queue import JobQueue, make_saq_queue
from workers.worker import HTTP_TIMEOUT, OEMBED_CONCURRENCY
from workers.youtube import API_BATCH_LIMIT, YouTubeClient

LATENCY_MS = 100.0
TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
SAMPLE_BATCHES = 6
MODES = ("api", "oembed")
BATCH_COMMITS = "SELECT updated_at FROM videos WHERE job_id = $1 GROUP BY updated_at ORDER BY updated_at"
"""One timestamp per committed batch: the worker stamps a batch's rows with one `now`."""


def video_ids(count: int, start: int) -> list[str]:
    """Distinct ids the fake knows (11 characters, `vid` + 8 digits)."""
    return [f"vid{number:08d}" for number in range(start, start + count)]


def api_bound_minimum_s(mode: str, videos: int) -> float:
    rounds = math.ceil(videos / API_BATCH_LIMIT) if mode == "api" else videos / OEMBED_CONCURRENCY
    return rounds * LATENCY_MS / 1000


async def measured_floor_s(mode: str, videos: int, fake: FakeYouTube, batches: int) -> float:
    """The worker's client alone on a sample of batches, extrapolated to `videos`."""
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        client = YouTubeClient(
            http,
            api_key=fake.api_key if mode == "api" else None,
            api_url=fake.api_url,
            oembed_url=fake.oembed_url,
            concurrency=OEMBED_CONCURRENCY,
        )
        sample = video_ids(batches * client.batch_size, 9_000_000)
        await client.fetch(sample[: client.batch_size])  # connections opened, nothing measured
        started = time.perf_counter()
        for i in range(batches):
            await client.fetch(sample[i * client.batch_size : (i + 1) * client.batch_size])
        per_video = (time.perf_counter() - started) / len(sample)
    return per_video * videos


async def wait_for_worker(dsn: str, workers: int = 1, timeout_s: float = 60) -> None:
    queue = JobQueue(make_saq_queue(dsn, max_connections=2), heartbeat_s=Settings().job_heartbeat_s)
    await queue.connect()
    try:
        deadline = time.monotonic() + timeout_s
        while (await queue.ping())["workers"] < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("no worker registered with SAQ")
            await asyncio.sleep(0.2)
    finally:
        await queue.disconnect()


async def import_once(
    server: Server, account: Account, dsn: str, mode: str, videos: int, start: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {account.token}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120, headers=headers) as http:
        created = await http.post("/api/lists", json={"name": f"P4 {mode}"})
        created.raise_for_status()
        list_id = created.json()["id"]
        socket = await connect_ready(server.ws_url, account.token)
        try:
            body = "\n".join(video_ids(videos, start)).encode()
            began = time.perf_counter()
            response = await http.post(
                f"/api/lists/{list_id}/imports", content=body, headers={"Content-Type": "text/plain"}
            )
            post_s = time.perf_counter() - began
            answered_at = datetime.now(UTC)
            if response.status_code != 202:
                raise RuntimeError(f"import answered {response.status_code}: {response.text[:500]}")
            job_id = response.json()["job"]["id"]
            events_seen = 0
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 120))
                if frame["type"] == "event" and frame["job_id"] == job_id:
                    events_seen += 1
                    if frame["status"] in TERMINAL:
                        wall_s = time.perf_counter() - began
                        break
        finally:
            await socket.close()
    conn = await asyncpg.connect(dsn)
    try:
        job = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", UUID(job_id))
        events = await conn.fetchval("SELECT count(*) FROM progress_events WHERE job_id = $1", UUID(job_id))
        batch_commits = await conn.fetch(BATCH_COMMITS, UUID(job_id))
    finally:
        await conn.close()
    assert job is not None
    run_s = (job["finished_at"] - job["started_at"]).total_seconds()
    stamps = [row["updated_at"] for row in batch_commits]
    cycles_ms = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(stamps)]
    return {
        "status": job["status"],
        "processed": job["processed"],
        "failed": job["failed"],
        "post_s": post_s,
        "wall_s": wall_s,
        "run_s": run_s,
        "events": events,
        "events_on_socket": events_seen,
        "events_per_s": events / run_s if run_s else math.nan,
        "pickup_s": (job["started_at"] - answered_at).total_seconds(),
        "batches": len(stamps),
        "batch_cycle_ms": summary(cycles_ms),
    }


def start_worker(dsn: str, fake: FakeYouTube, mode: str) -> Worker:
    env = app_env(dsn, YOUTUBE_API_URL=fake.api_url, YOUTUBE_OEMBED_URL=fake.oembed_url)
    if mode == "api":
        env["YOUTUBE_API_KEY"] = fake.api_key
    worker = Worker(env, f"p4-worker-{mode}")
    worker.start()
    return worker


async def run(bench: Bench) -> Result:
    quick = bench.quick
    videos = 1000 if quick else 10_000
    sample_batches = 3 if quick else SAMPLE_BATCHES
    dsn, server = await bench.shared_server()
    [account] = await create_accounts(dsn, 1, prefix="p4-")
    outcomes: list[dict[str, Any]] = []
    with FakeYouTube(latency_ms=LATENCY_MS) as fake:
        # SAQ hands a job to any worker and the mode is a worker's setting, so only one may run at a time.
        # Both start (and register) up front, the second paused with SIGSTOP until the first has gone.
        workers = {mode: start_worker(dsn, fake, mode) for mode in MODES}
        try:
            await wait_for_worker(dsn, workers=len(workers))
            workers["oembed"].pause()
            trace("P4 workers ready")
            for mode in MODES:
                if mode == "oembed":
                    await workers["api"].stop()
                    workers["oembed"].resume()
                    trace("P4 api worker stopped")
                floor_s = await measured_floor_s(mode, videos, fake, sample_batches)
                trace(f"P4 {mode} floor measured")
                fake.reset()
                outcome = await import_once(
                    server, account, dsn, mode, videos, 0 if mode == "api" else 1_000_000
                )
                trace(f"P4 {mode} import done")
                outcomes.append(
                    {
                        **outcome,
                        "mode": mode,
                        "videos": videos,
                        "requests": fake.stats()[f"{mode}_requests"],
                        "minimum_s": api_bound_minimum_s(mode, videos),
                        "floor_s": floor_s,
                    }
                )
        finally:
            for worker in workers.values():
                await worker.stop()
    rows = [
        [
            "Data API (50 ids a request)"
            if o["mode"] == "api"
            else f"oEmbed ({OEMBED_CONCURRENCY} at a time)",
            f"{o['videos']:,}",
            f"{o['requests']:,}",
            fmt(o["minimum_s"], 1),
            fmt(o["floor_s"], 1),
            fmt(o["wall_s"], 1),
            fmt_ratio(ratio(o["wall_s"], o["minimum_s"])),
            fmt_ratio(ratio(o["wall_s"], o["floor_s"])),
            fmt(o["post_s"], 2),
            fmt(o["pickup_s"], 2),
            fmt(o["batch_cycle_ms"]["p50"], 0),
            str(o["events"]),
            fmt(o["events_per_s"], 2),
            o["status"],
        ]
        for o in outcomes
    ]
    targets = []
    for o in outcomes:
        targets.append(
            Target(f"P4 {o['mode']} wall / API-bound minimum", ratio(o["wall_s"], o["minimum_s"]), 1.25)
        )
        targets.append(
            Target(f"P4 {o['mode']} events per second per job", o["events_per_s"], 5.0, unit="events/s")
        )
    return Result(
        key="P4",
        title=f"import of {videos:,} videos, fake YouTube at {LATENCY_MS:.0f} ms, one web + one worker",
        columns=[
            "mode",
            "videos",
            "requests",
            "minimum s",
            "client floor s",
            "wall s",
            "wall / minimum",
            "wall / floor",
            "POST s",
            "pickup s",
            "batch cycle ms",
            "events",
            "events/s",
            "status",
        ],
        rows=rows,
        targets=targets,
        notes=[
            "minimum = ceil(n/50) x 100 ms (API) or n/8 x 100 ms (oEmbed); client floor = the worker's "
            f"YouTubeClient alone on {sample_batches} sample batches, extrapolated",
            "wall = import POST sent → terminal event received on a WebSocket (includes the POST: parse, "
            "insert, enqueue)",
            "pickup = 202 received → job started by the worker (SAQ dequeue); batch cycle = p50 time "
            "between two batch commits (API: one 100 ms request a batch; oEmbed: 32 ids, 4 rounds of 8)",
            f"worker logs: {log_path('p4-worker-api').parent}",
        ],
        data={"imports": outcomes},
    )
