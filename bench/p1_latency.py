"""P1 latency: a progress event committed by a writer → received by a `websockets` client through the app.

Writers commit events the way a worker does (job row UPDATE + event INSERT, one transaction) at a
steady 250 events/s in all, and stamp `time.perf_counter_ns()` right after COMMIT returns. There are
`USERS` writers (one user and one job each, 250/USERS events/s apiece, phase-shifted): one user's events
serialise on its `progress_streams` row until commit, so one connection alone cannot hold 250/s when a
commit takes more than 4 ms on a busy machine. Two receivers in the same process (one clock) stamp each
arrival: the app's WebSockets (one per user; trigger → NOTIFY → hub → socket) and, as the baseline, a
bare asyncpg connection LISTENing on the same channels, so every event is measured on both paths at once.

A second pass repeats this against `bench/bare_server.py` (the smallest LISTEN → WebSocket forwarder under
the same uvicorn) instead of the app: the baseline of the targets, since the bare LISTEN is signalled during
the commit itself and no design with a web process in between can come near it (docs/benchmarks.md). The
targets compare, per event, the time each path adds after the bare LISTEN's receipt of the same event: the
writer's commit stamp is taken when its coroutine resumes, which can come after a fast receipt.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import asyncpg
import websockets
from websockets.asyncio.client import ClientConnection

from app.live.hub import channel_name
from bench.common import (
    Account,
    Bench,
    Result,
    Target,
    create_accounts,
    fmt,
    fmt_ratio,
    ns_to_ms,
    paced,
    ratio,
    start_bare_server,
    summary,
    wait_for,
)
from testkit.harness import EventWriter

RATE_PER_S = 250
USERS = 4
QUANTILES = ("p50", "p95", "p99", "max")


@dataclass
class Phase:
    """One pass of the writers against one server: per event, commit → receipt on both receivers (ms)."""

    socket_ms: list[float]
    listener_ms: list[float]
    added_ms: list[float]
    """Per event received on both: socket minus listener."""
    rate_per_s: float
    lost: int
    snapshots: int


async def measure(dsn: str, ws_url: str, accounts: list[Account], events: int, warmup: int) -> Phase:
    committed: dict[tuple[int, int], int] = {}
    """(user index, seq) → commit time; likewise for the two receivers."""
    via_socket: dict[tuple[int, int], int] = {}
    via_listener: dict[tuple[int, int], int] = {}
    snapshots = 0
    user_of_channel = {channel_name(account.user_id): i for i, account in enumerate(accounts)}

    def on_notification(conn: object, pid: int, channel: str, payload: object) -> None:
        now = time.perf_counter_ns()
        assert isinstance(payload, str)
        via_listener[user_of_channel[channel], json.loads(payload)["seq"]] = now

    async def read_socket(user: int, socket: ClientConnection) -> None:
        nonlocal snapshots
        async for message in socket:
            now = time.perf_counter_ns()
            frame = json.loads(message)
            if frame["type"] == "event":
                via_socket[user, frame["seq"]] = now
            elif frame["type"] == "snapshot":
                snapshots += 1

    async def write_events(user: int, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        writer = EventWriter(dsn, accounts[user].user_id, total=10**9)
        await writer.create_job(conn)
        await asyncio.sleep(user / RATE_PER_S)  # phase shift: the writers take turns

        async def write(_: int) -> None:
            seq = await writer.write(conn)
            committed[user, seq] = time.perf_counter_ns()

        await paced(RATE_PER_S / len(accounts), (events + warmup) // len(accounts), write)

    listener = await asyncpg.connect(dsn)
    writer_conns = [await asyncpg.connect(dsn) for _ in accounts]
    sockets = [await connect_ready(ws_url, account.token) for account in accounts]
    try:
        for channel in user_of_channel:
            await listener.add_listener(channel, on_notification)
        readers = [asyncio.create_task(read_socket(i, socket)) for i, socket in enumerate(sockets)]
        began = time.perf_counter()
        await asyncio.gather(*(write_events(i, conn) for i, conn in enumerate(writer_conns)))
        seconds = time.perf_counter() - began
        await wait_for(lambda: all(key in via_socket and key in via_listener for key in committed), 15)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        for socket in sockets:
            await socket.close()
        await listener.close()
        for conn in writer_conns:
            await conn.close()

    measured = sorted(committed, key=committed.__getitem__)[warmup:]
    socket_ms = ns_to_ms([via_socket[key] - committed[key] for key in measured if key in via_socket])
    both = [key for key in measured if key in via_socket and key in via_listener]
    return Phase(
        socket_ms=socket_ms,
        listener_ms=ns_to_ms([via_listener[key] - committed[key] for key in measured if key in via_listener]),
        added_ms=ns_to_ms([via_socket[key] - via_listener[key] for key in both]),
        rate_per_s=len(committed) / seconds,
        lost=len(measured) - len(socket_ms),
        snapshots=snapshots,
    )


async def connect_ready(url: str, token: str) -> ClientConnection:
    socket = await websockets.connect(url, max_queue=None)
    await socket.send(json.dumps({"type": "hello", "token": token, "after": None}))
    while json.loads(await asyncio.wait_for(socket.recv(), 15))["type"] != "ready":
        pass
    return socket


def row(label: str, stats: dict[str, float]) -> list[str]:
    return [label, f"{stats['n']:.0f}", *(fmt(stats[q], 3) for q in QUANTILES)]


def ratio_row(label: str, value: dict[str, float], baseline: dict[str, float]) -> list[str]:
    return [label, "", *(fmt_ratio(ratio(value[q], baseline[q])) for q in QUANTILES)]


async def run(bench: Bench) -> Result:
    quick = bench.quick
    events, warmup = (300, 50) if quick else (5000, 250)
    dsn, server = await bench.shared_server()
    accounts = await create_accounts(dsn, USERS, prefix="p1-")
    app_phase = await measure(dsn, server.ws_url, accounts, events, warmup)
    bare_server = await start_bare_server(dsn, "p1-bare-server", accounts)
    try:
        bare_phase = await measure(dsn, bare_server.ws_url, accounts, events, warmup)
    finally:
        await bare_server.stop()

    app, listener = summary(app_phase.socket_ms), summary(app_phase.listener_ms)
    forwarder, listener_2 = summary(bare_phase.socket_ms), summary(bare_phase.listener_ms)
    added, added_2 = summary(app_phase.added_ms), summary(bare_phase.added_ms)
    ratios = {q: ratio(added[q], added_2[q]) for q in QUANTILES}
    rows = [
        row("pass 1: bare asyncpg LISTEN (commit → receipt)", listener),
        row("pass 1: app, hub → WebSocket (commit → receipt)", app),
        row("pass 1: app, after the bare LISTEN's receipt", added),
        row("pass 2: bare asyncpg LISTEN (commit → receipt)", listener_2),
        row("pass 2: bare forwarder → WebSocket (commit → receipt)", forwarder),
        row("pass 2: forwarder, after the bare LISTEN's receipt", added_2),
        ratio_row("app / bare forwarder, after the bare LISTEN", added, added_2),
    ]
    return Result(
        key="P1",
        title=f"commit → receipt latency, steady {RATE_PER_S} events/s ({app['n']:.0f} events a pass, ms)",
        columns=["path", "events", *QUANTILES],
        rows=rows,
        targets=[
            Target("P1 p50 app / bare forwarder", ratios["p50"], 1.15),
            Target("P1 p99 app / bare forwarder", ratios["p99"], 1.3),
        ],
        notes=[
            f"writers achieved {app_phase.rate_per_s:.0f} and {bare_phase.rate_per_s:.0f} events/s "
            f"({USERS} users, one writer connection each); first {warmup} events of a pass discarded",
            f"events missing on the app's sockets: {app_phase.lost}; "
            f"snapshots mid-stream: {app_phase.snapshots}",
            "baseline: bench/bare_server.py, a raw ASGI LISTEN → queue-per-socket fan-out under the same "
            "uvicorn, the floor for any web process between Postgres and the socket",
            "the targets compare what each path adds after the bare LISTEN's receipt of the same event "
            "(signalled during the commit itself, in this process): a writer stamps its commit when its "
            "coroutine resumes, which on a quiet machine can come after a fast receipt (negative latencies)",
        ],
        data={
            "app_ms": app,
            "forwarder_ms": forwarder,
            "listener_ms": listener,
            "listener_pass2_ms": listener_2,
            "added_ms": added,
            "forwarder_added_ms": added_2,
            "ratios": ratios,
            "lost": app_phase.lost,
            "snapshots": app_phase.snapshots,
        },
    )
