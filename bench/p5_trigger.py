"""P5 trigger cost: INSERT into `progress_events` (seq + notify triggers) vs the same INSERT without them.

One connection, single-row autocommit INSERTs of the same event JSON. The variants are interleaved one
INSERT at a time (forward then reverse order), so every variant sees the same moment of a noisy machine;
each INSERT's round trip is timed. Besides the two the target compares, the breakdown tables carry one
trigger each; the proposal rows run the seq function with its `UPDATE jobs SET last_seq` line removed
(derived from `db/sql/progress_triggers.sql` at run time) and, last, seq and notify in one BEFORE trigger.
A bare asyncpg connection LISTENs on every channel, as the hub does in production.
"""

from __future__ import annotations

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

JOBS_UPDATE_LINE = "UPDATE jobs SET last_seq = NEW.seq WHERE id = NEW.job_id;"


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


SEQ_TRIGGER = (
    "CREATE TRIGGER assign_seq BEFORE INSERT ON {table}"
    " FOR EACH ROW EXECUTE FUNCTION progress_events_assign_seq_v1();"
)
NOTIFY_TRIGGER = (
    "CREATE TRIGGER notify AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION progress_events_notify_v1();"
)
SEQ_NO_JOBS_TRIGGER = (
    "CREATE TRIGGER assign_seq BEFORE INSERT ON {table}"
    " FOR EACH ROW EXECUTE FUNCTION bench_assign_seq_no_jobs();"
)


ONE_TRIGGER_FUNCTION = """
CREATE FUNCTION bench_assign_seq_and_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    INSERT INTO progress_streams AS s (user_id, last_seq) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING s.last_seq INTO NEW.seq;
    NEW.created_at := clock_timestamp();
    NEW.data := NEW.data || jsonb_build_object(
        'seq', NEW.seq,
        'job_id', NEW.job_id,
        'at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    );
    payload := NEW.data::text;
    IF octet_length(payload) > 7900 THEN
        payload := jsonb_build_object('seq', NEW.seq, 'job_id', NEW.job_id, 'truncated', true)::text;
    END IF;
    -- Sent at commit like any NOTIFY; discarded if this INSERT (or its transaction) fails.
    PERFORM pg_notify('progress_user_' || NEW.user_id::text, payload);
    RETURN NEW;
END;
$$;
"""
"""The proposal when P5 misses: the seq and notify work in ONE BEFORE trigger, without `UPDATE jobs`."""
ONE_TRIGGER = (
    "CREATE TRIGGER assign_seq_and_notify BEFORE INSERT ON {table}"
    " FOR EACH ROW EXECUTE FUNCTION bench_assign_seq_and_notify();"
)


def seq_function_without_jobs_update() -> str | None:
    """The real seq function minus its jobs UPDATE, or None when the function no longer has that line."""
    sql = queries["create_assign_seq_function"]
    if JOBS_UPDATE_LINE not in sql:
        return None
    return sql.replace(JOBS_UPDATE_LINE, "").replace(
        "progress_events_assign_seq_v1", "bench_assign_seq_no_jobs"
    )


def variants() -> list[Variant]:
    found = [
        Variant("plain INSERT, no triggers (baseline)", "bench_plain"),
        Variant("progress_events: seq + notify triggers", "progress_events", client_seq=False),
        Variant(
            "  breakdown: seq trigger only",
            "bench_seq_only",
            copy_of_events("bench_seq_only", SEQ_TRIGGER),
            False,
        ),
        Variant(
            "  breakdown: notify trigger only",
            "bench_notify_only",
            copy_of_events("bench_notify_only", NOTIFY_TRIGGER),
        ),
    ]
    function = seq_function_without_jobs_update()
    if function is not None:
        found += [
            Variant(
                "  proposal: seq without UPDATE jobs",
                "bench_seq_no_jobs",
                function + ";\n" + copy_of_events("bench_seq_no_jobs", SEQ_NO_JOBS_TRIGGER),
                False,
            ),
            Variant(
                "  proposal: seq without UPDATE jobs + notify",
                "bench_both_no_jobs",
                copy_of_events("bench_both_no_jobs", SEQ_NO_JOBS_TRIGGER, NOTIFY_TRIGGER),
                False,
            ),
        ]
    found.append(
        Variant(
            "  proposal: one BEFORE trigger, seq + notify, no UPDATE jobs",
            "bench_one_trigger",
            ONE_TRIGGER_FUNCTION + copy_of_events("bench_one_trigger", ONE_TRIGGER),
            False,
        )
    )
    return found


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
        targets=[Target("P5 progress_events / plain INSERT (p50)", target, 1.3)],
        notes=[
            "every INSERT is its own transaction (commit with WAL flush: synchronous_commit=on); "
            "INSERTs/s = 1 / mean",
            f"{len(chosen)} variants x {rounds} INSERTs in {seconds:.1f} s",
            "the breakdown rows differ from the target row only in which trigger functions run",
        ],
        data={
            "stats_ms": stats,
            "ratio_p50": target,
            "ratio_mean": ratio(stats["progress_events"]["mean"], base["mean"]),
        },
    )
