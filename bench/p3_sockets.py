"""P3 sockets: 1,000 / 5,000 / 10,000 idle authenticated sockets on one web process.

Per level: the server's RSS growth per socket (psutil, against its RSS before the first socket and after
a warm-up of 20 sockets), and the time for one event to reach all 1,000 sockets of one user (20 events
250 ms apart, --quick 10 at 150 ms; per event the last receipt minus the writer's commit time). 1,000 sockets
belong to the fan-out user; the rest are idle sockets of 9 other users (1,000 each), so each level also
adds LISTEN channels. Clients are two `bench.swarm` processes (raw RFC 6455 clients, half the sockets
each); their receipt times are CLOCK_MONOTONIC, comparable with the writer's in this process.

The same levels are then run against `bench/bare_server.py` (raw ASGI LISTEN → queue-per-socket fan-out
under the same uvicorn) as the baseline: what a socket and a delivery cost with no framework and no app.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil

from bench.common import (
    Account,
    Bench,
    Result,
    Server,
    Target,
    create_accounts,
    fmt,
    fmt_ratio,
    ratio,
    start_app_server,
    start_bare_server,
    summary,
    trace,
)
from bench.gc_probe import gc_pauses
from bench.swarm import SwarmProcess
from testkit.harness import EventWriter

FANOUT_SOCKETS = 1000
IDLE_USERS = 9
SOCKETS_PER_IDLE_USER = 1000
WARMUP_SOCKETS = 20


@dataclass
class Level:
    sockets: int
    rss_delta_bytes: int
    open_seconds: float
    open_failures: int
    fanout_all_ms: list[float] = field(default_factory=list)
    """Per event: commit → the last of the fan-out user's sockets received it."""
    fanout_first_ms: list[float] = field(default_factory=list)
    incomplete_events: int = 0
    fanout_cpu_s: float = 0.0
    """The server's CPU (user + system) while the fan-out events were delivered."""

    @property
    def cpu_us_per_delivery(self) -> float:
        deliveries = (len(self.fanout_all_ms) + self.incomplete_events) * FANOUT_SOCKETS
        return 1e6 * self.fanout_cpu_s / deliveries if deliveries else float("nan")

    @property
    def kb_per_socket(self) -> float:
        return self.rss_delta_bytes / self.sockets / 1024

    def as_json(self) -> dict[str, Any]:
        return {
            "sockets": self.sockets,
            "rss_delta_mb": self.rss_delta_bytes / 2**20,
            "kb_per_socket": self.kb_per_socket,
            "open_seconds": self.open_seconds,
            "open_failures": self.open_failures,
            "fanout_all_ms": summary(self.fanout_all_ms),
            "fanout_first_ms": summary(self.fanout_first_ms),
            "incomplete_events": self.incomplete_events,
            "server_cpu_us_per_delivery": self.cpu_us_per_delivery,
        }


class Swarms:
    """Two swarm processes; a request for n sockets is split between them."""

    def __init__(self, label: str) -> None:
        self.members = [SwarmProcess(f"{label}-swarm-{i}") for i in range(2)]

    async def start(self) -> None:
        for swarm in self.members:
            await swarm.start()

    async def stop(self) -> None:
        for swarm in self.members:
            await swarm.stop()

    async def open(
        self,
        url: str,
        tag: str,
        token: str | list[str],
        count: int,
        *,
        record: bool = False,
        reconnect: bool = False,
    ) -> tuple[int, int]:
        """`count` sockets with `token`, or one socket per token of a list."""
        options: dict[str, Any] = {"record": record, "reconnect": reconnect, "concurrency": 32}
        if isinstance(token, list):
            shares: list[tuple[str | list[str], int]] = [(token[0::2], 0), (token[1::2], 0)]
        else:
            shares = [(token, count // 2), (token, count - count // 2)]
        answers = await asyncio.gather(
            *(
                swarm.call("open", url=url, tag=tag, token=share, count=n, **options)
                for swarm, (share, n) in zip(self.members, shares, strict=True)
            )
        )
        return sum(a["opened"] for a in answers), sum(a["failed"] for a in answers)

    async def close(self, tag: str) -> None:
        await asyncio.gather(*(swarm.call("close", tag=tag) for swarm in self.members))

    async def times(self, tag: str) -> dict[int, list[int]]:
        merged: dict[int, list[int]] = {}
        for swarm in self.members:
            for seq, times in (await swarm.call("times", tag=tag)).items():
                merged.setdefault(int(seq), []).extend(times)
        return merged


async def settled_rss(process: psutil.Process) -> int:
    """RSS once it stops moving (allocations of the last handshakes land a little after `ready`)."""
    previous = process.memory_info().rss
    for _ in range(30):
        await asyncio.sleep(0.3)
        current = process.memory_info().rss
        if abs(current - previous) < 128 * 1024:
            return current
        previous = current
    return previous


async def fanout_writer(dsn: str, user_id: uuid.UUID) -> EventWriter:
    """A writer of the fan-out user's events, with its (endless) job created."""
    writer = EventWriter(dsn, user_id, total=10**9)
    conn = await asyncpg.connect(dsn)
    try:
        await writer.create_job(conn)
    finally:
        await conn.close()
    return writer


async def fan_out(
    dsn: str, writer: EventWriter, swarms: Swarms, events: int, gap_s: float
) -> tuple[list[float], list[float], int]:
    await asyncio.gather(*(swarm.call("reset") for swarm in swarms.members))
    committed: dict[int, int] = {}
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(events):
            seq = await writer.write(conn)
            committed[seq] = time.perf_counter_ns()
            await asyncio.sleep(gap_s)
    finally:
        await conn.close()
    await asyncio.sleep(0.5)
    times = await swarms.times("fanout")
    all_ms, first_ms, incomplete = [], [], 0
    for seq, commit_ns in committed.items():
        arrivals = times.get(seq, [])
        if len(arrivals) < FANOUT_SOCKETS:
            incomplete += 1
            continue
        all_ms.append((max(arrivals) - commit_ns) / 1e6)
        first_ms.append((min(arrivals) - commit_ns) / 1e6)
    return all_ms, first_ms, incomplete


async def measure(
    server: Server,
    dsn: str,
    fanout: Account,
    idle: list[Account],
    levels: list[int],
    events: int,
    gap_s: float,
    label: str,
) -> list[Level]:
    swarms = Swarms(label)
    await swarms.start()
    process = psutil.Process(server.pid)
    writer = await fanout_writer(dsn, fanout.user_id)
    results: list[Level] = []
    try:
        await swarms.open(server.ws_url, "warmup", idle[0].token, WARMUP_SOCKETS)
        await swarms.close("warmup")
        rss_before = await settled_rss(process)
        trace(f"P3 {label}: warmed up")
        opened, failed, open_seconds, idle_opened = 0, 0, 0.0, 0
        for level in levels:
            began = time.perf_counter()
            if opened == 0:
                ok, bad = await swarms.open(
                    server.ws_url, "fanout", fanout.token, FANOUT_SOCKETS, record=True
                )
                opened, failed = opened + ok, failed + bad
            while opened + failed < level:
                user = idle[idle_opened // SOCKETS_PER_IDLE_USER]
                count = min(SOCKETS_PER_IDLE_USER, level - opened - failed)
                ok, bad = await swarms.open(server.ws_url, f"idle-{user.email}", user.token, count)
                opened, failed, idle_opened = opened + ok, failed + bad, idle_opened + count
            open_seconds += time.perf_counter() - began
            trace(f"P3 {label}: {opened} sockets open")
            rss = await settled_rss(process)
            cpu_before = sum(process.cpu_times()[:2])
            all_ms, first_ms, incomplete = await fan_out(dsn, writer, swarms, events, gap_s)
            cpu_s = sum(process.cpu_times()[:2]) - cpu_before
            trace(f"P3 {label}: fan-out at {opened} measured")
            results.append(
                Level(opened, rss - rss_before, open_seconds, failed, all_ms, first_ms, incomplete, cpu_s)
            )
    finally:
        await swarms.stop()
    return results


async def fan_out_on_two_processes(
    dsn: str, fanout: Account, events: int, gap_s: float
) -> tuple[list[float], float, dict[int, int]]:
    """The fan-out of the 1,000-socket level, served by two web processes (`--workers 2`, each with its
    own hub): per-event times, the processes' CPU per delivery, and the sockets each process held."""
    server = await start_app_server(dsn, "p3-two-processes", web_processes=2, MAX_SOCKETS_PER_USER="20000")
    swarms = Swarms("p3-two")
    await swarms.start()
    try:
        _, bad = await swarms.open(server.ws_url, "fanout", fanout.token, FANOUT_SOCKETS, record=True)
        assert bad == 0, f"{bad} sockets failed to open"
        workers = psutil.Process(server.pid).children()
        held = {
            worker.pid: sum(
                1 for c in worker.net_connections("tcp") if c.laddr.port == server.port and c.raddr
            )
            for worker in workers
        }
        writer = await fanout_writer(dsn, fanout.user_id)
        cpu_before = sum(sum(worker.cpu_times()[:2]) for worker in workers)
        all_ms, _, incomplete = await fan_out(dsn, writer, swarms, events, gap_s)
        cpu_s = sum(sum(worker.cpu_times()[:2]) for worker in workers) - cpu_before
    finally:
        await swarms.stop()
        await server.stop()
    deliveries = (len(all_ms) + incomplete) * FANOUT_SOCKETS
    return all_ms, 1e6 * cpu_s / deliveries if deliveries else float("nan"), held


def gc_note(app: list[tuple[float, float]], bare: list[tuple[float, float]]) -> str:
    app_wall, app_cpu = max(app, default=(0.0, 0.0))
    bare_wall, _ = max(bare, default=(0.0, 0.0))
    return (
        f"full collections (generation 2) in the app's server: {len(app)}, longest {app_wall:.1f} ms wall "
        f"({app_cpu:.1f} ms CPU); in the bare forwarder's: {len(bare)}, longest {bare_wall:.1f} ms "
        "(bench/gc_probe.py)"
    )


def cpu_us_per_delivery(levels: list[Level]) -> float:
    """Over every level's fan-out: the server's CPU / deliveries."""
    deliveries = sum(
        (len(level.fanout_all_ms) + level.incomplete_events) * FANOUT_SOCKETS for level in levels
    )
    return 1e6 * sum(level.fanout_cpu_s for level in levels) / deliveries if deliveries else float("nan")


async def run(bench: Bench) -> Result:
    quick = bench.quick
    levels = [1000] if quick else [1000, 5000, 10000]
    events, gap_s = (10, 0.15) if quick else (20, 0.25)
    dsn = await bench.databases.clone("p3")
    accounts = await create_accounts(dsn, 1 + IDLE_USERS, prefix="p3-")
    fanout, idle = accounts[0], accounts[1:]
    server = await start_app_server(dsn, "p3-server", MAX_SOCKETS_PER_USER="20000")
    started = time.monotonic()  # the server is up: its startup's own collections are behind it
    try:
        app = await measure(server, dsn, fanout, idle, levels, events, gap_s, "p3-app")
    finally:
        await server.stop()
    app_gc = gc_pauses(server.log_path, server.pid, since=started) if server.log_path else []
    bare_server = await start_bare_server(dsn, "p3-bare-server", accounts)
    started = time.monotonic()
    try:
        bare = await measure(bare_server, dsn, fanout, idle, levels, events, gap_s, "p3-bare")
    finally:
        await bare_server.stop()
    bare_gc = gc_pauses(bare_server.log_path, bare_server.pid, since=started) if bare_server.log_path else []
    two_ms, two_cpu, two_held = await fan_out_on_two_processes(dsn, fanout, events, gap_s)

    rows = []
    for a, b in zip(app, bare, strict=True):
        a_all, b_all = summary(a.fanout_all_ms), summary(b.fanout_all_ms)
        rows.append(
            [
                f"{a.sockets:,}" + (f" ({a.open_failures} failed)" if a.open_failures else ""),
                fmt(a.rss_delta_bytes / 2**20, 1),
                fmt(a.kb_per_socket, 1),
                fmt(b.kb_per_socket, 1),
                fmt_ratio(ratio(a.kb_per_socket, b.kb_per_socket)),
                fmt(a_all["p50"], 1),
                fmt(a_all["p99"], 1),
                fmt(b_all["p50"], 1),
                fmt(b_all["p99"], 1),
                fmt_ratio(ratio(a_all["p99"], b_all["p99"])),
                f"{a.cpu_us_per_delivery:.0f} / {b.cpu_us_per_delivery:.0f}",
                f"{a.sockets / a.open_seconds:,.0f} / {b.sockets / b.open_seconds:,.0f}",
            ]
        )
    two = summary(two_ms)
    rows.append(
        [
            f"{FANOUT_SOCKETS:,}, 2 processes",
            "", "", "", "",
            fmt(two["p50"], 1), fmt(two["p99"], 1), "", "", "",
            f"{two_cpu:.0f} / -", "",
        ]
    )  # fmt: skip
    top, top_bare = app[-1], bare[-1]
    first_all, first_bare = summary(app[0].fanout_all_ms), summary(bare[0].fanout_all_ms)
    cpu_app, cpu_bare = cpu_us_per_delivery(app), cpu_us_per_delivery(bare)
    opened_ratio = ratio(top.sockets / top.open_seconds, top_bare.sockets / top_bare.open_seconds)
    longest_gc = max(app_gc, default=(0.0, 0.0))
    incomplete = sum(level.incomplete_events for level in app)
    return Result(
        key="P3",
        title=f"idle sockets on one web process; one event to {FANOUT_SOCKETS:,} sockets of one user",
        columns=[
            "sockets",
            "app RSS +MB",
            "app KB/socket",
            "bare KB/socket",
            "KB ratio",
            "app fan-out p50 ms",
            "app p99 ms",
            "bare p50 ms",
            "bare p99 ms",
            "p99 ratio",
            "CPU µs/delivery app / bare",
            "opened/s app / bare",
        ],
        rows=rows,
        targets=[
            Target(
                f"P3 memory per socket at {top.sockets:,} sockets, app / bare forwarder",
                ratio(top.kb_per_socket, top_bare.kb_per_socket),
                1.15,
            ),
            Target("P3 server CPU per delivery, app / bare forwarder", ratio(cpu_app, cpu_bare), 1.25),
            Target(
                f"P3 fan-out p99 to {FANOUT_SOCKETS:,} sockets (at {app[0].sockets:,}), app / bare forwarder",
                ratio(first_all["p99"], first_bare["p99"]),
                1.0,
            ),
            Target(
                f"P7 handshakes: sockets opened per second (to {top.sockets:,}), app / bare forwarder",
                opened_ratio,
                0.5,
                at_least=True,
            ),
            Target(
                f"GC longest full collection of the app, up to {top.sockets:,} sockets open",
                longest_gc[0],
                50.0,
                unit="ms",
            ),
        ],
        notes=[
            f"fan-out: {events} events per level, {gap_s * 1000:.0f} ms apart; the time is commit → the "
            f"last of the {FANOUT_SOCKETS:,} receipts; events not received by all sockets: {incomplete}",
            "bare = bench/bare_server.py under the same uvicorn (no auth query, no snapshot, no hub logic); "
            "an app handshake checks the token (a query), subscribes, sends a snapshot (a query) and ready",
            "CPU µs/delivery = the server's CPU during the fan-out (idle gaps included) / deliveries; over "
            f"all levels: app {cpu_app:.1f}, bare {cpu_bare:.1f}",
            gc_note(app_gc, bare_gc),
            f"2 processes: the app under uvicorn --workers 2 (each its own hub), the {FANOUT_SOCKETS:,} "
            f"sockets split {' / '.join(str(n) for n in two_held.values() if n)} by the kernel; CPU of both",
            "clients: two raw-protocol swarm processes; server, clients and Postgres share the 2 cores",
        ],
        data={
            "app": [level.as_json() for level in app],
            "bare": [level.as_json() for level in bare],
            "gc_full_collections_ms": {"app": app_gc, "bare": bare_gc},
            "two_processes": {
                "fanout_all_ms": summary(two_ms),
                "cpu_us_per_delivery": two_cpu,
                "held": two_held,
            },
        },
    )
