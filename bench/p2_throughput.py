"""P2 throughput: events/s delivered to sockets, with 1, 4 and 16 concurrent writers.

Each writer is one user with one job and one connection, committing as fast as it can for a fixed time,
single-row or 10-row transactions (one INSERT statement either way). Three kinds of pass per
configuration, in the same run, interleaved over a few rounds (rotated, so none always runs first on a
noisy machine) and summed:
- plain: the same INSERTs into `bench_plain` (progress_events without its triggers): the ceiling.
- bare: INSERTs into `progress_events` (seq + NOTIFY triggers) received by one bare asyncpg connection
  LISTENing on every writer's channel: the baseline the target refers to.
- app: the same INSERTs delivered through the app to one WebSocket per user (raw clients in a separate
  process, bench/swarm.py, so the client's cost stays out of the server's CPU budget as far as two cores
  allow).
Delivered rate = events received / (last receipt - first commit); a socket that falls 1,000 events
behind gets a snapshot instead (docs/design.md, "The progress socket"), so events it skipped are not
counted as delivered.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil

from app.live.hub import channel_name
from bench.common import (
    Account,
    Bench,
    Result,
    Target,
    create_accounts,
    create_jobs,
    fmt,
    fmt_ratio,
    ratio,
    trace,
    wait_for,
)
from bench.swarm import SwarmProcess

MAX_WRITERS = 16
DRAIN_TIMEOUT_S = 30.0
_SEQ = re.compile(r'"seq": ?(\d+)')

INSERT_EVENT = "INSERT INTO progress_events (user_id, job_id, data) VALUES ($1, $2, $3::jsonb) RETURNING seq"
INSERT_EVENTS = (
    "WITH inserted AS (INSERT INTO progress_events (user_id, job_id, data)"
    " SELECT $1, $2, d::jsonb FROM unnest($3::text[]) AS d RETURNING seq) SELECT max(seq) FROM inserted"
)
INSERT_PLAIN = "INSERT INTO bench_plain (user_id, job_id, seq, data) VALUES ($1, $2, $3, $4::jsonb)"
INSERT_PLAINS = (
    "INSERT INTO bench_plain (user_id, job_id, seq, data)"
    " SELECT $1, $2, $3 + n, d::jsonb FROM unnest($4::text[]) WITH ORDINALITY AS t(d, n)"
)


def event_data(index: int) -> str:
    """The JSON a worker writes (about 250 bytes), as in the acceptance harness."""
    return json.dumps(
        {
            "list_id": None,
            "status": "running",
            "progress": 45.0,
            "processed": 450 + index,
            "failed": 3,
            "total": 1000,
            "rate": 38.5,
            "eta_s": 14,
            "message": f"Fetched {450 + index} of 1000 videos",
            "error": None,
        }
    )


@dataclass
class Writers:
    """`MAX_WRITERS` users, each with a job and a connection; `plain_seq` keeps bench_plain's seqs unique."""

    accounts: list[Account]
    job_ids: list[uuid.UUID]
    conns: list[asyncpg.Connection[asyncpg.Record]]
    plain_seq: list[int] = field(default_factory=lambda: [0] * MAX_WRITERS)

    async def drive(self, count: int, rows: int, plain: bool, duration_s: float) -> Drive:
        data = [event_data(i) for i in range(rows)]
        deadline = time.perf_counter_ns() + int(duration_s * 1e9)

        async def one(i: int) -> tuple[int, int]:
            conn, user_id, job_id = self.conns[i], self.accounts[i].user_id, self.job_ids[i]
            done = last = 0
            while time.perf_counter_ns() < deadline:
                if plain:
                    seq = self.plain_seq[i]
                    if rows == 1:
                        await conn.execute(INSERT_PLAIN, user_id, job_id, seq + 1, data[0])
                    else:
                        await conn.execute(INSERT_PLAINS, user_id, job_id, seq, data)
                    self.plain_seq[i] = seq + rows
                elif rows == 1:
                    last = await conn.fetchval(INSERT_EVENT, user_id, job_id, data[0])
                else:
                    last = await conn.fetchval(INSERT_EVENTS, user_id, job_id, data)
                done += rows
            return done, last

        started = time.perf_counter_ns()
        outcomes = await asyncio.gather(*(one(i) for i in range(count)))
        return Drive(
            started_ns=started,
            ended_ns=time.perf_counter_ns(),
            rows=sum(done for done, _ in outcomes),
            last_seqs=[last for _, last in outcomes],
        )


@dataclass
class Drive:
    started_ns: int
    ended_ns: int
    rows: int
    last_seqs: list[int]

    @property
    def commit_rate(self) -> float:
        return self.rows / ((self.ended_ns - self.started_ns) / 1e9)


@dataclass
class Delivery:
    events: int
    last_ns: int
    snapshots: int = 0
    complete: bool = True

    def rate(self, drive: Drive) -> float:
        return self.events / ((self.last_ns - drive.started_ns) / 1e9) if self.last_ns else 0.0

    def lag_ms(self, drive: Drive) -> float:
        return (self.last_ns - drive.ended_ns) / 1e6 if self.last_ns else float("nan")


async def through_listener(
    writers: Writers, count: int, rows: int, duration_s: float, dsn: str
) -> tuple[Drive, Delivery]:
    positions: dict[str, int] = {}
    received = 0
    last_ns = 0

    def on_notification(conn: object, pid: int, channel: str, payload: object) -> None:
        nonlocal received, last_ns
        last_ns = time.perf_counter_ns()
        received += 1
        assert isinstance(payload, str)
        match = _SEQ.search(payload)
        positions[channel] = int(match.group(1)) if match else 0

    channels = [channel_name(account.user_id) for account in writers.accounts[:count]]
    listener = await asyncpg.connect(dsn)
    try:
        for channel in channels:
            await listener.add_listener(channel, on_notification)
        drive = await writers.drive(count, rows, plain=False, duration_s=duration_s)
        complete = await wait_for(
            lambda: all(
                positions.get(ch, 0) >= last for ch, last in zip(channels, drive.last_seqs, strict=True)
            ),
            DRAIN_TIMEOUT_S,
        )
    finally:
        await listener.close()
    return drive, Delivery(events=received, last_ns=last_ns, complete=complete)


async def through_app(
    writers: Writers, count: int, rows: int, duration_s: float, swarm: SwarmProcess
) -> tuple[Drive, Delivery]:
    await swarm.call("reset")
    drive = await writers.drive(count, rows, plain=False, duration_s=duration_s)
    tags = [f"u{i}" for i in range(count)]
    stats: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal stats
        stats = await swarm.call("stats")
        return all(
            stats[tag]["positions"][0] >= last for tag, last in zip(tags, drive.last_seqs, strict=True)
        )

    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    complete = await caught_up()
    while not complete and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        complete = await caught_up()
    return drive, Delivery(
        events=sum(stats[tag]["events"] for tag in tags),
        last_ns=max(stats[tag]["last_ns"] for tag in tags),
        snapshots=sum(stats[tag]["snapshots_after_ready"] for tag in tags),
        complete=complete,
    )


@dataclass
class Tally:
    """One kind of pass, summed over a configuration's rounds."""

    delivered: int = 0
    delivery_s: float = 0.0
    committed: int = 0
    commit_s: float = 0.0
    snapshots: int = 0
    lag_ms: float = 0.0
    complete: bool = True
    server_cpu_s: float = 0.0

    def add(self, drive: Drive, delivery: Delivery | None = None) -> None:
        self.committed += drive.rows
        self.commit_s += (drive.ended_ns - drive.started_ns) / 1e9
        if delivery is None:  # plain INSERTs: nothing to deliver, the commit rate is the figure
            self.delivered += drive.rows
            self.delivery_s += (drive.ended_ns - drive.started_ns) / 1e9
            return
        self.delivered += delivery.events
        self.delivery_s += (delivery.last_ns - drive.started_ns) / 1e9 if delivery.last_ns else 0.0
        self.snapshots += delivery.snapshots
        self.lag_ms = max(self.lag_ms, delivery.lag_ms(drive))
        self.complete = self.complete and delivery.complete

    @property
    def rate(self) -> float:
        return self.delivered / self.delivery_s if self.delivery_s else 0.0

    @property
    def server_cpu_us_per_event(self) -> float:
        return 1e6 * self.server_cpu_s / self.delivered if self.delivered else float("nan")

    @property
    def commit_rate(self) -> float:
        return self.committed / self.commit_s if self.commit_s else 0.0


async def run(bench: Bench) -> Result:
    quick = bench.quick
    configs = [(1, 1), (16, 1)] if quick else [(w, r) for r in (1, 10) for w in (1, 4, 16)]
    rounds, duration_s = (2, 0.4) if quick else (3, 1.0)
    dsn, server = await bench.shared_server()
    accounts = await create_accounts(dsn, MAX_WRITERS, prefix="p2-")
    job_ids = await create_jobs(dsn, [account.user_id for account in accounts])
    server_process = psutil.Process(server.pid)
    swarm = SwarmProcess("p2-swarm")
    await swarm.start()
    conns = [await asyncpg.connect(dsn) for _ in accounts]
    writers = Writers(accounts, job_ids, conns)
    rows_out: list[list[str]] = []
    data: list[dict[str, Any]] = []
    try:
        for i, account in enumerate(accounts):
            opened = await swarm.call("open", url=server.ws_url, tag=f"u{i}", token=account.token, count=1)
            assert opened["opened"] == 1, opened
        for count, rows in configs:
            plain, bare, app = Tally(), Tally(), Tally()
            for round_ in range(rounds):
                passes = ["plain", "listener", "app"]
                for kind in passes[round_ % 3 :] + passes[: round_ % 3]:  # rotated: no pass always first
                    if kind == "plain":
                        plain.add(await writers.drive(count, rows, plain=True, duration_s=duration_s))
                    elif kind == "listener":
                        bare.add(*await through_listener(writers, count, rows, duration_s, dsn))
                    else:
                        cpu_before = sum(server_process.cpu_times()[:2])
                        app.add(*await through_app(writers, count, rows, duration_s, swarm))
                        app.server_cpu_s += sum(server_process.cpu_times()[:2]) - cpu_before
            trace(f"P2 {count} writers x {rows} rows done")
            rows_out.append(
                [
                    str(count),
                    str(rows),
                    fmt(plain.rate, 0),
                    fmt(bare.rate, 0),
                    fmt(app.rate, 0),
                    fmt_ratio(ratio(app.rate, bare.rate)),
                    fmt_ratio(ratio(bare.rate, plain.rate)),
                    fmt(app.commit_rate, 0),
                    fmt(app.server_cpu_us_per_event, 0),
                    fmt(app.lag_ms, 0),
                    f"{app.snapshots}{'' if app.complete else ' (incomplete)'}",
                ]
            )
            data.append(
                {
                    "writers": count,
                    "rows_per_txn": rows,
                    "plain_rows_per_s": plain.rate,
                    "listener_events_per_s": bare.rate,
                    "app_events_per_s": app.rate,
                    "app_commit_rate": app.commit_rate,
                    "listener_commit_rate": bare.commit_rate,
                    "app_lag_ms": app.lag_ms,
                    "app_server_cpu_us_per_event": app.server_cpu_us_per_event,
                    "app_snapshots": app.snapshots,
                    "app_complete": app.complete,
                    "listener_complete": bare.complete,
                    "app_events": app.delivered,
                    "app_committed": app.committed,
                }
            )
    finally:
        for conn in conns:
            await conn.close()
        await swarm.stop()
    worst = min(data, key=lambda d: ratio(d["app_events_per_s"], d["listener_events_per_s"]))
    worst_ratio = ratio(worst["app_events_per_s"], worst["listener_events_per_s"])
    return Result(
        key="P2",
        title=f"throughput, {rounds} rounds of {duration_s:g} s per pass (events or rows per second)",
        columns=[
            "writers",
            "rows/txn",
            "plain INSERT",
            "trigger → LISTEN",
            "app → sockets",
            "app / LISTEN",
            "LISTEN / plain",
            "commits (app pass)",
            "server CPU µs/event",
            "app drain ms",
            "app snapshots",
        ],
        rows=rows_out,
        targets=[
            Target(
                f"P2 app / trigger-NOTIFY throughput, worst case ({worst['writers']} writers x "
                f"{worst['rows_per_txn']} rows)",
                worst_ratio,
                0.8,
                at_least=True,
            )
        ],
        notes=[
            "one user, job, connection and socket per writer; commits (app pass) = rows/s the writers "
            "committed while the app was delivering (the server shares the two cores with them)",
            "server CPU µs/event = the web process's user+system CPU in the app passes / events delivered "
            "(1e6 / it = what one core could deliver)",
            "app drain ms = last receipt after the writers stopped (worst round): how far the sockets lagged",
        ],
        data={"configs": data},
    )
