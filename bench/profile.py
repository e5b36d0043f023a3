"""Where the time goes, for the targets the benchmarks miss: `python -m bench.profile SCENARIO`.

- `fanout`: py-spy on the app's web process while one event at a time goes to 1,000 sockets of one user
  (P3's fan-out), then the server's CPU samples grouped by the innermost layer they were in.
- `open`: the same while 1,000 sockets connect (P3's opening rate).
- `memory`: the app served in this process under tracemalloc while 5,000 sockets connect: Python
  allocations per socket by file and line (P3's memory per socket).
- `gc`: the app served in this process with a timer on every cyclic-GC pass, while 5,000 sockets
  connect and 30 events fan out to 1,000 of them (P3's p99 outliers).
- `worker`: an in-process SAQ worker running a Data API (or `--mode oembed`) import against the fake at
  100 ms, with a timer around each step of the batch loop (P4's per-batch overhead).

py-spy is not a project dependency: `pip install py-spy` into the environment first. Samples of threads
other than the event loop's (the idle logging thread) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import gc
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench.common import Bench, create_accounts, start_app_server
from bench.p3_sockets import FANOUT_SOCKETS, Swarms, fan_out, fanout_writer

LAYERS: list[tuple[str, re.Pattern[str]]] = [
    (
        "uvicorn WebSocket send: framing + transport.write (the syscall)",
        re.compile(r"uvicorn/protocols/websockets"),
    ),
    ("asyncio.timeout() around each send", re.compile(r"asyncio/timeouts\.py")),
    ("asyncio locks and events (send lock, wakeups)", re.compile(r"asyncio/locks\.py")),
    (
        "asyncio task steps (a wake-up per socket per event)",
        re.compile(r"asyncio/(tasks|events|futures)\.py"),
    ),
    ("the event loop itself (uvloop: epoll, dispatch)", re.compile(r"asyncio/runners\.py")),
    ("Litestar + advanced-alchemy per-message send wrappers", re.compile(r"litestar/|advanced_alchemy/")),
    ("SQLAlchemy (auth query, sessions)", re.compile(r"sqlalchemy/")),
    ("asyncpg (queries, notifications)", re.compile(r"asyncpg/")),
    ("app: live hub (app/live/hub.py)", re.compile(r"app/live/hub\.py")),
    ("app: socket session (app/live/session.py)", re.compile(r"app/live/session\.py")),
    ("app: other", re.compile(r"/app/|app/")),
    ("uvicorn: handshake, HTTP, ASGI plumbing", re.compile(r"uvicorn/")),
]
"""Checked from the innermost frame outwards: a sample counts for the first layer one of its frames is in."""


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    return "event loop and the rest"


def breakdown(raw: Path) -> tuple[int, collections.Counter[str]]:
    """py-spy's raw format: `frame;frame;...;leaf count`, root first."""
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or "threading.py" in stack:
            continue
        total += int(count)
        layers[layer_of(stack.split(";"))] += int(count)
    return total, layers


def print_breakdown(title: str, raw: Path, rate_hz: int, work: str) -> None:
    total, layers = breakdown(raw)
    print(f"\n{title}: {total} samples at {rate_hz} Hz = {total / rate_hz:.2f} s of server CPU for {work}")
    for name, count in layers.most_common():
        print(f"  {100 * count / total:5.1f}%  {count / rate_hz * 1000:8.0f} ms  {name}")
    print(f"  (raw samples: {raw})")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


async def record(pid: int, out: Path, rate_hz: int, work: Callable[[], Awaitable[None]]) -> None:
    spy = subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate_hz),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # py-spy attaches
    try:
        await work()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        await asyncio.to_thread(spy.wait, 30)


async def profile_sockets(scenario: str, out_dir: Path, events: int) -> None:
    bench = Bench(quick=True)
    try:
        dsn = await bench.databases.clone("profile")
        fanout_user, other = await create_accounts(dsn, 2, prefix="profile-")
        server = await start_app_server(dsn, "profile-server", MAX_SOCKETS_PER_USER="20000")
        swarms = Swarms("profile")
        await swarms.start()
        try:
            await swarms.open(server.ws_url, "warmup", other.token, 20)
            opened: list[float] = []

            async def open_sockets() -> None:
                began = time.perf_counter()
                await swarms.open(server.ws_url, "fanout", fanout_user.token, FANOUT_SOCKETS, record=True)
                opened.append(time.perf_counter() - began)

            if scenario == "open":
                await record(server.pid, out_dir / "open.txt", 250, open_sockets)
                rate = FANOUT_SOCKETS / opened[0]
                print(f"{FANOUT_SOCKETS} sockets opened in {opened[0]:.1f} s ({rate:.0f}/s)")
                print_breakdown("opening", out_dir / "open.txt", 250, f"{FANOUT_SOCKETS} handshakes")
                return
            await open_sockets()
            writer = await fanout_writer(dsn, fanout_user.user_id)
            results: list[tuple[list[float], list[float], int]] = []

            async def deliver() -> None:
                results.append(await fan_out(dsn, writer, swarms, events, 0.25))

            await record(server.pid, out_dir / "fanout.txt", 250, deliver)
            p50 = sorted(results[0][0])[len(results[0][0]) // 2]
            print(f"fan-out of {events} events to {FANOUT_SOCKETS} sockets under py-spy: p50 {p50:.0f} ms")
            print_breakdown("fan-out", out_dir / "fanout.txt", 250, f"{events} x {FANOUT_SOCKETS} deliveries")
        finally:
            await swarms.stop()
            await server.stop()
    finally:
        await bench.close()


@contextlib.asynccontextmanager
async def app_in_this_process(dsn: str, max_sockets: int) -> AsyncIterator[str]:
    """The app under uvicorn on this process's event loop (so this process can inspect it); yields its
    WebSocket URL."""
    import uvicorn

    from app.asgi import create_app
    from app.settings import Settings

    settings = Settings(database_url=dsn, run_workers_in_web=False, max_sockets_per_user=max_sockets)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/api/ws/progress"
    finally:
        server.should_exit = True
        await serving


async def profile_memory(sockets: int) -> None:
    """Python allocations per socket, by file and line (tracemalloc), against the RSS growth."""
    import tracemalloc

    import psutil

    bench = Bench(quick=True)
    swarms = Swarms("memory")
    try:
        dsn = await bench.databases.clone("memory")
        user, other = await create_accounts(dsn, 2, prefix="memory-")
        tracemalloc.start(1)
        async with app_in_this_process(dsn, sockets + 100) as url:
            await swarms.start()
            process = psutil.Process()
            await swarms.open(url, "warmup", other.token, 20)
            await swarms.close("warmup")
            await asyncio.sleep(0.5)
            gc.collect()
            before, rss_before = tracemalloc.take_snapshot(), process.memory_info().rss
            opened, failed = await swarms.open(url, "idle", user.token, sockets)
            await asyncio.sleep(1.0)
            gc.collect()
            after, rss_after = tracemalloc.take_snapshot(), process.memory_info().rss
            await swarms.stop()
    finally:
        await swarms.stop()
        await bench.close()
    rss_kb = (rss_after - rss_before) / opened / 1024
    print(
        f"{opened} sockets open ({failed} failed); RSS +{rss_kb:.1f} KB a socket (tracemalloc's own included)"
    )
    by_file = after.compare_to(before, "filename")
    traced = sum(stat.size_diff for stat in by_file)
    print(f"Python allocations (tracemalloc): +{traced / opened / 1024:.1f} KB a socket; by file:")
    for stat in by_file[:15]:
        blocks = stat.count_diff / opened
        print(f"  {stat.size_diff / opened:8.0f} B  {blocks:5.1f} blocks  {stat.traceback[0].filename}")
    print("by line:")
    for stat in after.compare_to(before, "lineno")[:25]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / opened:8.0f} B  {frame.filename}:{frame.lineno}")


async def profile_gc(sockets: int, events: int) -> None:
    """The cyclic GC's pauses while sockets open and while events fan out, and a full collection's cost."""
    pauses: list[tuple[int, float, float]] = []
    """(generation, wall ms, CPU ms): on 2 shared cores the wall time includes being descheduled."""
    started: list[tuple[float, float]] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append((time.perf_counter(), time.thread_time()))
        elif started:
            wall, cpu = started.pop()
            took = 1000 * (time.perf_counter() - wall), 1000 * (time.thread_time() - cpu)
            pauses.append((info["generation"], *took))

    def report(what: str) -> None:
        for generation in (0, 1, 2):
            took = [(wall, cpu) for g, wall, cpu in pauses if g == generation]
            if took:
                longest = max(took)
                summary = (
                    f"gen{generation} x {len(took)}, longest {longest[0]:.0f} ms ({longest[1]:.0f} ms CPU), "
                    f"total {sum(wall for wall, _ in took):.0f} ms"
                )
                print(f"  {what}: {summary}")
        pauses.clear()

    bench = Bench(quick=True)
    swarms = Swarms("gc")
    try:
        dsn = await bench.databases.clone("gc")
        fanout_user, other = await create_accounts(dsn, 2, prefix="gc-")
        async with app_in_this_process(dsn, sockets + 100) as url:
            await swarms.start()
            tracked_before = len(gc.get_objects())
            gc.callbacks.append(on_gc)
            try:
                await swarms.open(url, "fanout", fanout_user.token, FANOUT_SOCKETS, record=True)
                if sockets > FANOUT_SOCKETS:
                    await swarms.open(url, "idle", other.token, sockets - FANOUT_SOCKETS)
                tracked = len(gc.get_objects())
                per_socket = (tracked - tracked_before) / sockets
                print(
                    f"{sockets} sockets open; objects the GC tracks: {tracked:,} ({per_socket:.0f} a socket)"
                )
                report("opening")
                writer = await fanout_writer(dsn, fanout_user.user_id)
                all_ms, _, _ = await fan_out(dsn, writer, swarms, events, 0.25)
                p50 = sorted(all_ms)[len(all_ms) // 2]
                print(f"fan-out of {events} events: p50 {p50:.0f} ms, max {max(all_ms):.0f} ms")
                report("fan-out")
            finally:
                gc.callbacks.remove(on_gc)
            began = time.perf_counter()
            gc.collect()
            print(f"one full collection now: {1000 * (time.perf_counter() - began):.0f} ms")
            await swarms.stop()
    finally:
        await swarms.stop()
        await bench.close()


def timed(
    name: str, totals: dict[str, list[float]], function: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            totals.setdefault(name, []).append(time.perf_counter() - began)

    return wrapper


async def profile_worker(mode: str, videos: int) -> None:
    # Imported here: the socket scenarios do not need the worker's modules.
    from app.services import jobs as job_service
    from app.settings import Settings
    from bench.p4_import import LATENCY_MS, import_once
    from testkit.fake_youtube import FakeYouTube
    from workers import processing, youtube
    from workers.worker import make_worker

    totals: dict[str, list[float]] = {}
    steps: list[tuple[str, Any, str]] = [
        ("YouTube fetch (client, incl. latency)", youtube.YouTubeClient, "fetch"),
        ("read: next pending batch", processing, "pending_batch"),
        ("commit_batch (whole transaction)", processing.JobRunner, "commit_batch"),
        ("  lock the job row", processing, "lock_job"),
        ("  UPDATE the batch's videos", processing, "apply_fetch_result"),
        ("  recount the job's videos", job_service, "video_counts"),
        ("  write the progress event", job_service, "write_event"),
    ]
    patched = []
    for name, owner, attribute in steps:
        if hasattr(owner, attribute):
            original = getattr(owner, attribute)
            setattr(owner, attribute, timed(name, totals, original))
            patched.append((owner, attribute, original))
        else:
            print(f"(not timed: {owner.__name__}.{attribute} no longer exists)")
    bench = Bench(quick=True)
    try:
        dsn, server = await bench.shared_server()
        [account] = await create_accounts(dsn, 1, prefix="profile-")
        with FakeYouTube(latency_ms=LATENCY_MS) as fake:
            settings = Settings(
                database_url=dsn,
                run_workers_in_web=False,
                youtube_api_key=fake.api_key if mode == "api" else None,
                youtube_api_url=fake.api_url,
                youtube_oembed_url=fake.oembed_url,
            )
            worker = make_worker(settings)
            worker.SIGNALS = []
            await worker.queue.connect()
            task = asyncio.create_task(worker.start())
            try:
                outcome = await import_once(server, account, dsn, mode, videos, 0)
            finally:
                await worker.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await worker.queue.disconnect()
    finally:
        await bench.close()
        for owner, attribute, original in patched:
            setattr(owner, attribute, original)
    batches = outcome["batches"]
    print(
        f"{mode} import of {videos} videos: wall {outcome['wall_s']:.1f} s, {batches} batches, "
        f"batch cycle p50 {outcome['batch_cycle_ms']['p50']:.0f} ms"
    )
    for name, _, _ in steps:
        spent = totals.get(name, [])
        print(f"  {name:<40} {len(spent):5d} calls  {1000 * sum(spent) / max(batches, 1):7.1f} ms per batch")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n", 1)[0])
    parser.add_argument("scenario", choices=["fanout", "open", "memory", "gc", "worker"])
    parser.add_argument("--sockets", type=int, default=5000, help="memory, gc: sockets to open")
    parser.add_argument("--events", type=int, default=30, help="fanout: events to deliver")
    parser.add_argument("--mode", choices=["api", "oembed"], default="api", help="worker: metadata source")
    parser.add_argument("--videos", type=int, default=5000, help="worker: videos to import")
    args = parser.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    if args.scenario == "worker":
        uvloop.run(profile_worker(args.mode, args.videos))
    elif args.scenario == "memory":
        uvloop.run(profile_memory(args.sockets))
    elif args.scenario == "gc":
        uvloop.run(profile_gc(args.sockets, args.events))
    else:
        uvloop.run(profile_sockets(args.scenario, out_dir, args.events))


if __name__ == "__main__":
    main()
