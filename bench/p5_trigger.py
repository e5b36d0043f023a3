"""P5 trigger cost: INSERT into `progress_events` (its seq + notify trigger) vs the same INSERT without it.

One connection, single-row autocommit INSERTs of the same event JSON. The variants are interleaved one
INSERT at a time (forward then reverse order), so every variant sees the same moment of a noisy machine;
each INSERT's round trip is timed. Besides the two the target compares: today's trigger function without
its `pg_notify` (derived from `db/sql/progress_triggers.sql` at run time: the notify's share), and the two
triggers migration 0007 replaced (the seq trigger with its `UPDATE jobs SET last_seq`, and an AFTER INSERT
notify trigger, as that migration froze them). A bare asyncpg connection LISTENs on every channel, as the
hub does in production.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field

import asyncpg

from app.live.hub import channel_name
from bench.common import (
    Bench,
    Result,
    Target,
    create_accounts,
    create_jobs,
    fmt,
    fmt_ratio,
    ratio,
    summary,
)
from bench.p2_throughput import event_data
from db.queries import queries
from testkit.harness import ROOT

NOTIFY_LINE = "PERFORM pg_notify('progress_user_' || NEW.user_id::text, payload);"
MIGRATION_0007 = ROOT / "db" / "migrations" / "versions" / "20261206_0007_seq_and_notify_in_one_trigger.py"


@dataclass
class Variant:
    label: str
    table: str
    setup: str = ""
    client_seq: bool = True
    """True when no trigger assigns seq (the table still has the NOT NULL and UNIQUE (user_id, seq))."""
    times_ms: list[float] = field(default_factory=list)
    next_seq: int = 0


def copy_of_events(table: str, *triggers: str) -> str:
    sql = [
        f"CREATE TABLE {table} (LIKE progress_events INCLUDING ALL);",
        f"ALTER TABLE {table} ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;",
    ]
    sql += [trigger.format(table=table) for trigger in triggers]
    return "\n".join(sql)


def renamed(function_sql: str, old: str, new: str) -> str:
    return function_sql.replace(old, new) + ";\n"


def previous_triggers() -> str:
    """The two triggers before migration 0007 (seq with `UPDATE jobs SET last_seq`, then an AFTER INSERT
    notify), as that migration froze them, on a copy of the table: what this benchmark measured before."""
    spec = importlib.util.spec_from_file_location("migration_0007", MIGRATION_0007)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return (
        renamed(migration.ASSIGN_SEQ_FUNCTION_BEFORE, "progress_events_assign_seq_v1", "bench_old_seq")
        + renamed(migration.NOTIFY_FUNCTION_BEFORE, "progress_events_notify_v1", "bench_old_notify")
        + copy_of_events(
            "bench_previous",
            "CREATE TRIGGER seq BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION bench_old_seq();",
            "CREATE TRIGGER notify AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION bench_old_notify();",
        )
    )


def seq_without_notify() -> str:
    """Today's trigger function minus its pg_notify, on a copy of the table: the notify's share."""
    function = queries["create_sequence_and_notify_function"]
    assert NOTIFY_LINE in function, "the breakdown removes this line; update NOTIFY_LINE with the function"
    return renamed(
        function.replace(NOTIFY_LINE, ""), "progress_events_sequence_and_notify_v1", "bench_seq_only"
    ) + copy_of_events(
        "bench_seq_only",
        "CREATE TRIGGER seq BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION bench_seq_only();",
    )


def variants() -> list[Variant]:
    return [
        Variant("plain INSERT, no triggers (baseline)", "bench_plain"),
        Variant("progress_events: one trigger, seq + notify", "progress_events", client_seq=False),
        Variant("  breakdown: the same without its notify", "bench_seq_only", seq_without_notify(), False),
        Variant(
            "  before 0007: seq trigger with UPDATE jobs + notify trigger",
            "bench_previous",
            previous_triggers(),
            False,
        ),
    ]


async def run(bench: Bench) -> Result:
    quick = bench.quick
    rounds = 300 if quick else 4000
    dsn = await bench.databases.clone("p5")
    chosen = variants()
    accounts = await create_accounts(dsn, len(chosen), prefix="p5-")
    users = [account.user_id for account in accounts]
    jobs = await create_jobs(dsn, users)
    data = event_data(0)
    conn = await asyncpg.connect(dsn)
    listener = await asyncpg.connect(dsn)
    try:
        for variant in chosen:
            if variant.setup:
                await conn.execute(variant.setup)
        for user in users:
            await listener.add_listener(channel_name(user), lambda *_: None)

        async def insert(index: int, variant: Variant) -> None:
            user_id, job_id = users[index], jobs[index]
            if variant.client_seq:
                variant.next_seq += 1
                sql = (
                    f"INSERT INTO {variant.table} (user_id, job_id, seq, data) VALUES ($1, $2, $3, $4::jsonb)"
                )
                started = time.perf_counter_ns()
                await conn.execute(sql, user_id, job_id, variant.next_seq, data)
            else:
                sql = f"INSERT INTO {variant.table} (user_id, job_id, data) VALUES ($1, $2, $3::jsonb)"
                started = time.perf_counter_ns()
                await conn.execute(sql, user_id, job_id, data)
            variant.times_ms.append((time.perf_counter_ns() - started) / 1e6)

        order = list(enumerate(chosen))
        for _ in range(50):  # warm-up: plans cached, pages in memory
            for index, variant in order:
                await insert(index, variant)
        for variant in chosen:
            variant.times_ms.clear()
        began = time.perf_counter()
        for round_ in range(rounds):
            for index, variant in order if round_ % 2 else reversed(order):
                await insert(index, variant)
        seconds = time.perf_counter() - began
    finally:
        await listener.close()
        await conn.close()

    stats = {variant.table: summary(variant.times_ms) for variant in chosen}
    base = stats["bench_plain"]
    rows = [
        [
            variant.label,
            fmt(stats[variant.table]["p50"], 3),
            fmt(stats[variant.table]["p95"], 3),
            fmt(stats[variant.table]["mean"], 3),
            fmt(1000 / stats[variant.table]["mean"], 0),
            fmt_ratio(ratio(stats[variant.table]["p50"], base["p50"])),
            fmt_ratio(ratio(stats[variant.table]["mean"], base["mean"])),
        ]
        for variant in chosen
    ]
    target = ratio(stats["progress_events"]["p50"], base["p50"])
    return Result(
        key="P5",
        title=f"trigger cost, 1 writer, single-row autocommit INSERTs ({rounds} a variant, interleaved, ms)",
        columns=["table", "p50", "p95", "mean", "INSERTs/s", "p50 / plain", "mean / plain"],
        rows=rows,
        targets=[Target("P5 progress_events / plain INSERT (p50)", target, 1.45)],
        notes=[
            "every INSERT is its own transaction (commit with WAL flush: synchronous_commit=on); "
            "INSERTs/s = 1 / mean",
            f"{len(chosen)} variants x {rounds} INSERTs in {seconds:.1f} s",
            "the other rows differ from the target row only in their trigger functions; writers now set "
            "jobs.last_seq themselves, in the UPDATE of the job row they make anyway (app/services/jobs.py)",
        ],
        data={
            "stats_ms": stats,
            "ratio_p50": target,
            "ratio_mean": ratio(stats["progress_events"]["mean"], base["mean"]),
        },
    )
