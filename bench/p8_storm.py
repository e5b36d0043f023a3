"""P8 reconnect storm: 10,000 sockets of 500 users (20 each, MAX_SOCKETS_PER_USER's default) on one web
process, which is restarted (SIGTERM, then a new process on the same port) while every user's job keeps
writing events.

The clients are two `bench.swarm` processes whose raw clients behave as the dashboard does
(app/dashboard/static/live.js): after a 1012 they come back within 0.25-1 s, after a refused connection
with exponential backoff and equal jitter (0.5 s doubling to 30 s), and they say hello with `after` = the
last seq they have. Measured: from the SIGTERM to the moment the last socket has its `ready` (with
`resumed:true`: a replay, not a snapshot), the phases of that time (the old process's shutdown, the new
one's start, the clients' reconnects), the new process's CPU, the kernel's listen-queue overflows, and
every client's own count of duplicated and skipped events; at the end every socket must be at its user's
head. `--quick`: 50 users (1,000 sockets).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import psutil

from bench.common import (
    Bench,
    Result,
    Target,
    create_accounts,
    create_jobs,
    fmt,
    paced,
    percentile,
    start_app_server,
    trace,
)
from bench.gc_probe import gc_pauses
from bench.p3_sockets import Swarms
from testkit.harness import EventWriter

SOCKETS_PER_USER = 20
WRITE_RATE_PER_S = 100
WRITERS = 4


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections the kernel dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


class Writers:
    """Events for every user in turn, WRITE_RATE_PER_S in all, on WRITERS connections; the head of each
    user's stream is what its sockets must reach."""

    def __init__(self, dsn: str, users: list[uuid.UUID], jobs: list[uuid.UUID]) -> None:
        self.dsn = dsn
        self.writers = [
            EventWriter(dsn, user, job_id=job, total=10**9) for user, job in zip(users, jobs, strict=True)
        ]
        self.heads: dict[uuid.UUID, int] = {}
        self.written = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conns = [await asyncpg.connect(self.dsn) for _ in range(WRITERS)]
        try:
            await asyncio.gather(*(self._write(conns[i], i) for i in range(WRITERS)))
        finally:
            for conn in conns:
                await conn.close()

    async def _write(self, conn: asyncpg.Connection[asyncpg.Record], lane: int) -> None:
        mine = self.writers[lane::WRITERS]

        async def write(i: int) -> None:
            writer = mine[i]
            self.heads[writer.user_id] = await writer.write(conn)
            self.written += 1

        while not self._stop.is_set():  # in rounds of one event per user of this lane
            await paced(WRITE_RATE_PER_S / WRITERS, len(mine), write)

    def stop(self) -> None:
        self._stop.set()


async def run(bench: Bench) -> Result:
    users = 50 if bench.quick else 500
    dsn = await bench.databases.clone("p8")
    accounts = await create_accounts(dsn, users, prefix="p8-")
    jobs = await create_jobs(dsn, [account.user_id for account in accounts])
    server = await start_app_server(dsn, "p8-server")
    swarms = Swarms("p8")
    await swarms.start()
    writers = Writers(dsn, [account.user_id for account in accounts], jobs)
    writing: asyncio.Task[None] | None = None
    try:
        for account in accounts:
            _, failed = await swarms.open(
                server.ws_url, str(account.user_id), account.token, SOCKETS_PER_USER, reconnect=True
            )
            assert failed == 0, f"{failed} sockets of {account.email} failed to open"
        sockets = users * SOCKETS_PER_USER
        trace(f"P8: {sockets} sockets open")
        writing = asyncio.create_task(writers.run())
        await asyncio.sleep(3.0)  # steady state: every user has had events
        old_pid, overflows_before = server.pid, listen_overflows()
        began_ns = time.perf_counter_ns()
        await server.stop()
        stopped_ns = time.perf_counter_ns()
        await server.start()
        up_ns = time.perf_counter_ns()
        since = time.monotonic()
        new = psutil.Process(server.pid)
        answers = await asyncio.gather(
            *(swarm.call("wait_back", since_ns=began_ns, within_s=120) for swarm in swarms.members)
        )
        cpu_s = sum(new.cpu_times()[:2])
        overflows = listen_overflows() - overflows_before
        trace("P8: every socket back")
        writers.stop()
        await writing
        writing = None
        behind = 0
        for account in accounts:
            head = writers.heads.get(account.user_id, 0)
            for swarm in swarms.members:
                waited = await swarm.call("wait", tag=str(account.user_id), seq=head, within_s=30)
                behind += waited["behind"]
        final = [await swarm.call("storm", since_ns=began_ns) for swarm in swarms.members]
    finally:
        if writing is not None:
            writers.stop()
            await writing
        await swarms.stop()
        await server.stop()
    gc_ms = gc_pauses(server.log_path, server.pid, since=since) if server.log_path else []

    ready_ns = sorted(ns for answer in answers for ns in answer["ready_ns"])
    back = sum(answer["ready_since"] for answer in answers)
    resumed = sum(answer["resumed_since"] for answer in answers)
    last_ns = max(answer["last_ready_ns"] for answer in answers)
    storm_s = (last_ns - began_ns) / 1e9 if back == sockets else float("nan")
    reconnect_s = (last_ns - up_ns) / 1e9
    duplicates = sum(answer["duplicates"] for answer in final)
    gaps = sum(answer["gaps"] for answer in final)
    connects = sum(answer["connects"] for answer in final) - sockets  # the first connection of each

    def after_up(q: float) -> str:
        return fmt((percentile(ready_ns, q) - up_ns) / 1e9, 2)

    rows = [
        [
            f"{sockets:,} ({users} users)",
            fmt((stopped_ns - began_ns) / 1e9, 2),
            fmt((up_ns - stopped_ns) / 1e9, 2),
            f"{after_up(50)} / {after_up(99)} / {fmt(reconnect_s, 2)}",
            fmt(storm_s, 2),
            f"{resumed:,} / {back:,}",
            f"{connects:,}",
            f"{connects / reconnect_s:,.0f}" if reconnect_s > 0 else "-",
            fmt(cpu_s, 1),
            str(overflows),
            f"{duplicates} / {gaps} / {behind}",
        ]
    ]
    return Result(
        key="P8",
        title=f"reconnect storm: {sockets:,} sockets of {users} users, their web process restarted",
        columns=[
            "sockets",
            "old process stops s",
            "new process up s",
            "ready after up p50 / p99 / last s",
            "SIGTERM → all ready s",
            "resumed / ready",
            "reconnections",
            "handshakes/s",
            "new process CPU s",
            "listen overflows",
            "duplicated / skipped / behind",
        ],
        rows=rows,
        targets=[
            Target(
                f"P8 reconnect storm of {sockets:,} sockets: restart → every socket resumed",
                storm_s,
                15.0,
                unit="s",
            ),
            Target(
                "P8 sockets that did not resume (ready with resumed:false, or none)",
                sockets - resumed,
                0,
                unit="sockets",
            ),
            Target(
                "P8 events lost or duplicated on the sockets", duplicates + gaps + behind, 0, unit="events"
            ),
        ],
        notes=[
            f"writers: {WRITE_RATE_PER_S} events/s in all, one user after another on {WRITERS} connections, "
            f"through the restart ({writers.written:,} events, each to {SOCKETS_PER_USER} sockets)",
            "the old process stops: SIGTERM → exit (uvicorn closes every socket with 1012, the hub stops); "
            "the new process is up: started → /api/health answers; ready after up: the clients' readies "
            "measured from then",
            "a handshake: TCP + HTTP upgrade, the token check (one query), subscribe (a LISTEN for a user's "
            "first socket), the replay after `after` (one query), then ready",
            f"reconnections: connections made after the first of each client, refused ones not counted; "
            f"new process CPU: user + system from its start to the last ready; full GC collections there: "
            f"{len(gc_ms)}, longest {max(gc_ms, default=(0.0, 0.0))[0]:.1f} ms",
            "duplicated / skipped: events a client saw at or below its position, or beyond position + 1 "
            "without a snapshot; behind: sockets not at their user's head 30 s after the writers stopped",
        ],
        data={
            "sockets": sockets,
            "storm_s": storm_s,
            "stop_s": (stopped_ns - began_ns) / 1e9,
            "start_s": (up_ns - stopped_ns) / 1e9,
            "reconnect_s": reconnect_s,
            "resumed": resumed,
            "back": back,
            "connects": connects,
            "cpu_s": cpu_s,
            "listen_overflows": overflows,
            "duplicates": duplicates,
            "gaps": gaps,
            "behind": behind,
            "old_pid": old_pid,
            "gc_full_ms": gc_ms,
        },
    )
