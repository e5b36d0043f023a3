"""P9 many channels: one hub LISTENing on 10,000 user channels against 10, at the same event rate.

PostgreSQL up to 18 checks every notification against a listening session's channel list one by one
(`IsListeningOn`), so the hub's backend pays for every channel it LISTENs on, for every notification of
every user. One app server; 10 "hot" users with one socket each receive every event (writers at
`RATE_PER_S` in all, one transaction an event, stamped at commit as P1 does). Three passes of the same
writes: A with only the hot users' 10 channels, B with 9,990 more users holding one idle socket each (the
hub LISTENs on 10,000 channels), then A again once they have left. Measured: commit → receipt on the hot
sockets, and the CPU time of the hub's Postgres backend (`/proc/<pid>/stat` of the backend whose
`application_name` is the hub's) per notification. `--quick`: 1,000 channels, shorter passes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import psutil

from app.live.hub import APPLICATION_NAME
from app.services.users import hash_token, new_token_secret
from bench.common import (
    Bench,
    Result,
    Target,
    fmt,
    fmt_ratio,
    ns_to_ms,
    paced,
    ratio,
    start_app_server,
    summary,
    trace,
)
from bench.p3_sockets import Swarms
from testkit.harness import EventWriter

HOT_USERS = 10
RATE_PER_S = 200


async def bulk_users(dsn: str, count: int) -> list[tuple[uuid.UUID, str]]:
    """`count` users with a token each, in two statements (the benchmark needs thousands)."""
    users = [(uuid.uuid4(), new_token_secret()) for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES ($1, $2, now(), now())",
            [(user, f"p9-{user.hex}@example.com") for user, _ in users],
        )
        await conn.executemany(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at)"
            " VALUES ($1, $2, 'p9', $3, now())",
            [(uuid.uuid4(), user, hash_token(secret)) for user, secret in users],
        )
    finally:
        await conn.close()
    return users


def backend_cpu_s(pid: int) -> float:
    """A process's time on a CPU so far, in nanoseconds' precision (/proc/PID/schedstat, first field)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def settled(backend: int, server_pid: int, within_s: float = 120.0) -> None:
    """Until the web process and the hub's backend are idle (under 10 and 2 ms of CPU in half a second):
    the sockets' ends and the hub's UNLISTENs done."""
    deadline = time.monotonic() + within_s
    server = psutil.Process(server_pid)

    def busy() -> tuple[float, float]:
        return sum(server.cpu_times()[:2]), backend_cpu_s(backend)

    previous = busy()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = busy()
        if current[0] - previous[0] < 0.010 and current[1] - previous[1] < 0.002:
            return
        previous = current


async def hub_backend(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
    finally:
        await conn.close()
    assert len(pids) == 1, f"expected one hub backend, found {len(pids)}"
    return int(pids[0]["pid"])


async def one_pass(
    dsn: str, writers: list[EventWriter], swarms: Swarms, backend: int, server_pid: int, seconds: float
) -> dict[str, float]:
    await asyncio.gather(*(swarm.call("reset") for swarm in swarms.members))
    conns = [await asyncpg.connect(dsn) for _ in writers]
    committed: dict[int, list[tuple[int, int]]] = {}
    """user index → (seq, commit ns)."""
    cpu_before, web_before = backend_cpu_s(backend), sum(psutil.Process(server_pid).cpu_times()[:2])
    began = time.perf_counter()
    try:

        async def write(i: int) -> None:
            user = i % len(writers)
            seq = await writers[user].write(conns[user])
            committed.setdefault(user, []).append((seq, time.perf_counter_ns()))

        events = int(RATE_PER_S * seconds)
        await paced(RATE_PER_S, events, write)
        await asyncio.sleep(1.0)
    finally:
        for conn in conns:
            await conn.close()
    elapsed = time.perf_counter() - began
    cpu_s = backend_cpu_s(backend) - cpu_before
    web_s = sum(psutil.Process(server_pid).cpu_times()[:2]) - web_before
    latencies: list[int] = []
    missing = 0
    for user, writes in committed.items():
        times: dict[int, list[int]] = {}
        for swarm in swarms.members:
            for key, stamps in (await swarm.call("times", tag=f"hot-{user}")).items():
                times.setdefault(int(key), []).extend(stamps)
        for seq, commit_ns in writes:
            if seq in times:
                latencies.append(min(times[seq]) - commit_ns)
            else:
                missing += 1
    stats = summary(ns_to_ms(latencies))
    notifications = sum(len(writes) for writes in committed.values())
    return {
        **stats,
        "missing": missing,
        "notifications": notifications,
        "backend_cpu_s": cpu_s,
        "backend_us_per_notification": 1e6 * cpu_s / notifications,
        "web_us_per_notification": 1e6 * web_s / notifications,
        "seconds": elapsed,
    }


async def run(bench: Bench) -> Result:
    many = 1000 if bench.quick else 10_000
    seconds = 5.0 if bench.quick else 15.0
    dsn = await bench.databases.clone("p9")
    users = await bulk_users(dsn, many)
    hot, idle = users[:HOT_USERS], users[HOT_USERS:]
    conn = await asyncpg.connect(dsn)
    writers = [EventWriter(dsn, user, total=10**9) for user, _ in hot]
    try:
        for writer in writers:
            await writer.create_job(conn)
    finally:
        await conn.close()
    # No keepalive pings: 10,000 idle sockets would get 500 a second, work that is not the channels'.
    server = await start_app_server(
        dsn, "p9-server", extra_args=("--ws-ping-interval", "3600"), MAX_SOCKETS_PER_USER="20"
    )
    swarms = Swarms("p9")
    await swarms.start()
    passes: dict[str, dict[str, float]] = {}
    try:
        for i, (_, secret) in enumerate(hot):
            opened, failed = await swarms.open(server.ws_url, f"hot-{i}", secret, 1, record=True)
            assert failed == 0
        backend = await hub_backend(dsn)
        trace("P9: A")
        passes["A"] = await one_pass(dsn, writers, swarms, backend, server.pid, seconds)
        opened, failed = await swarms.open(server.ws_url, "idle", [secret for _, secret in idle], 0)
        assert failed == 0, f"{failed} idle sockets failed to open"
        trace(f"P9: B ({opened} idle sockets)")
        passes["B"] = await one_pass(dsn, writers, swarms, backend, server.pid, seconds)
        await swarms.close("idle")
        await settled(backend, server.pid)  # the sockets left; the hub UNLISTENs their channels
        trace("P9: A again")
        passes["A2"] = await one_pass(dsn, writers, swarms, backend, server.pid, seconds)
    finally:
        await swarms.stop()
        await server.stop()

    base = {key: (passes["A"][key] + passes["A2"][key]) / 2 for key in passes["A"]}
    labels = {
        "A": f"A: {HOT_USERS} channels",
        "B": f"B: {many:,} channels",
        "A2": f"A again: {HOT_USERS} channels",
    }
    rows = [
        [
            labels[key],
            f"{stats['notifications']:,.0f}",
            fmt(stats["p50"], 2),
            fmt(stats["p99"], 2),
            fmt(stats["max"], 2),
            fmt(stats["backend_us_per_notification"], 1),
            fmt(stats["web_us_per_notification"], 1),
            f"{stats['missing']:.0f}",
        ]
        for key, stats in passes.items()
    ]
    rows.append(
        [
            "B / mean of the A passes",
            "",
            fmt_ratio(ratio(passes["B"]["p50"], base["p50"])),
            fmt_ratio(ratio(passes["B"]["p99"], base["p99"])),
            "",
            fmt_ratio(ratio(passes["B"]["backend_us_per_notification"], base["backend_us_per_notification"])),
            fmt_ratio(ratio(passes["B"]["web_us_per_notification"], base["web_us_per_notification"])),
            "",
        ]
    )
    return Result(
        key="P9",
        title=f"one hub LISTENing on {many:,} user channels against {HOT_USERS}, {RATE_PER_S} events/s",
        columns=[
            "pass",
            "notifications",
            "p50 ms",
            "p99 ms",
            "max ms",
            "hub backend CPU µs/notification",
            "web CPU µs/notification",
            "missing",
        ],
        rows=rows,
        targets=[
            Target(
                f"P9 delivery p99 with {many:,} channels / {HOT_USERS}",
                ratio(passes["B"]["p99"], base["p99"]),
                1.5,
            ),
            Target(
                f"P9 hub backend CPU per notification with {many:,} channels / {HOT_USERS}",
                ratio(passes["B"]["backend_us_per_notification"], base["backend_us_per_notification"]),
                1.5,
            ),
        ],
        notes=[
            f"writers: {HOT_USERS} users, one transaction an event (a job UPDATE and the INSERT), "
            f"{RATE_PER_S} events/s in all for {seconds:.0f} s a pass; latency = commit → receipt on the "
            "user's one socket (a raw swarm client)",
            f"B: {len(idle):,} more users with one idle socket each, so the hub LISTENs on {many:,} channels "
            "(each notification is still meant for one of the 10 hot users); uvicorn's keepalive pings off",
            "hub backend CPU: time on a CPU of the Postgres backend of the hub's LISTEN connection "
            "(/proc/PID/schedstat) / notifications; web CPU: the web process's user + system time",
        ],
        data={"passes": passes, "channels": many},
    )
