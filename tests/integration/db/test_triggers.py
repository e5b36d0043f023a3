"""The progress_events triggers: gapless per-user seq in commit order, and the NOTIFY that carries each event.

Plain asyncpg on a fresh clone of the migrated database; rows are inserted with SQL, no app code involved.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

WAIT_S = 10.0
WRITERS = 4
EVENTS_PER_WRITER = 50


async def new_user(conn: asyncpg.Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, email, created_at, updated_at) VALUES ($1, $2, now(), now())",
        user_id,
        f"{user_id.hex}@example.com",
    )
    return user_id


async def new_job(conn: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    job_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO jobs (id, user_id, kind, status, total, processed, failed) "
        "VALUES ($1, $2, 'import', 'running', 10, 0, 0)",
        job_id,
        user_id,
    )
    return job_id


INSERT_EVENT = "INSERT INTO progress_events (user_id, job_id, data) VALUES ($1, $2, $3::jsonb) RETURNING seq"


async def insert_event(conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID, **data: Any) -> int:
    seq: int = await conn.fetchval(INSERT_EVENT, user_id, job_id, json.dumps({"status": "running", **data}))
    return seq


async def insert_events(
    conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID, count: int
) -> list[int]:
    """`count` events in ONE multi-row INSERT (one transaction)."""
    rows = await conn.fetch(
        "INSERT INTO progress_events (user_id, job_id, data) "
        "SELECT $1, $2, jsonb_build_object('status', 'running', 'n', n) FROM generate_series(1, $3) AS n "
        "RETURNING seq",
        user_id,
        job_id,
        count,
    )
    return [row["seq"] for row in rows]


class Listener:
    """A connection LISTENing on one user's channel; payloads arrive in a queue."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.payloads.put_nowait(str(payload))

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            payload: dict[str, Any] = json.loads(await self.payloads.get())
        return payload

    async def take(self, count: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(count)]


@asynccontextmanager
async def listening(database_url: str, user_id: uuid.UUID) -> AsyncIterator[Listener]:
    conn = await asyncpg.connect(database_url)
    listener = Listener(conn)
    await conn.add_listener(f"progress_user_{user_id}", listener._on_notify)
    try:
        yield listener
    finally:
        await conn.close()


@asynccontextmanager
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def seqs_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[int]:
    rows = await conn.fetch("SELECT seq FROM progress_events WHERE user_id = $1 ORDER BY seq", user_id)
    return [row["seq"] for row in rows]


async def test_seq_is_gapless_per_user_and_independent_across_users(database_url: str) -> None:
    """Interleaved events of two users are numbered 1..N per user, and the stream row holds the last seq."""
    async with connection(database_url) as conn:
        alice, bob = await new_user(conn), await new_user(conn)
        alice_job, bob_job = await new_job(conn, alice), await new_job(conn, bob)
        for owner, job in [(alice, alice_job), (bob, bob_job), (alice, alice_job)] * 3:
            await insert_event(conn, owner, job)
        await insert_events(conn, bob, bob_job, 4)
        assert await seqs_of(conn, alice) == list(range(1, 7))
        assert await seqs_of(conn, bob) == list(range(1, 8))
        streams = {r["user_id"]: r["last_seq"] for r in await conn.fetch("SELECT * FROM progress_streams")}
        assert streams == {alice: 6, bob: 7}


async def test_the_trigger_sets_seq_whatever_the_writer_sends(database_url: str) -> None:
    """A writer cannot choose seq: an explicit seq is overwritten by the next number of the stream."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        seq = await conn.fetchval(
            "INSERT INTO progress_events (user_id, job_id, seq, data) VALUES ($1, $2, 99, '{}') RETURNING seq",
            user,
            job,
        )
        assert seq == 1


async def test_concurrent_writers_get_commit_ordered_gapless_seqs(database_url: str) -> None:
    """4 writers x 50 events of one user: seqs are 1..200 and are delivered in that order (commit order)."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        jobs = [await new_job(conn, user) for _ in range(WRITERS)]

    async def writer(job: uuid.UUID, start: asyncio.Event) -> list[list[int]]:
        transactions: list[list[int]] = []
        async with connection(database_url) as conn:
            await start.wait()
            written = 0
            while written < EVENTS_PER_WRITER:
                size = min(1 + len(transactions) % 3, EVENTS_PER_WRITER - written)  # 1, 2 or 3 rows
                async with conn.transaction():
                    if size == 1:
                        seqs = [await insert_event(conn, user, job, n=written)]
                    else:
                        seqs = await insert_events(conn, user, job, size)
                transactions.append(seqs)
                written += size
        return transactions

    async with listening(database_url, user) as listener:
        start = asyncio.Event()
        writers = [asyncio.create_task(writer(job, start)) for job in jobs]
        start.set()
        async with asyncio.timeout(WAIT_S * 3):
            per_writer = await asyncio.gather(*writers)
        delivered = await listener.take(WRITERS * EVENTS_PER_WRITER)

    total = WRITERS * EVENTS_PER_WRITER
    assert [event["seq"] for event in delivered] == list(range(1, total + 1))
    assert listener.payloads.empty()
    committed = sorted(seq for transactions in per_writer for seqs in transactions for seq in seqs)
    assert committed == list(range(1, total + 1))
    for transactions in per_writer:
        for seqs in transactions:
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    # The writers really interleaved: no one writer's transactions are all before another's.
    spans = sorted((t[0][0], t[-1][-1]) for t in per_writer)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    by_seq = {event["seq"]: event["job_id"] for event in delivered}
    async with connection(database_url) as conn:
        rows = await conn.fetch("SELECT seq, job_id::text FROM progress_events WHERE user_id = $1", user)
    stored = {row["seq"]: row["job_id"] for row in rows}
    assert by_seq == stored


async def test_the_payload_is_the_rows_data(database_url: str) -> None:
    """The NOTIFY payload equals the stored `data`, which the trigger completed with seq, job_id and at."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        async with listening(database_url, user) as listener:
            await insert_event(conn, user, job, processed=3, total=10, message="Fetched 3 of 10 videos")
            payload = await listener.next()
        stored = json.loads(
            await conn.fetchval("SELECT data::text FROM progress_events WHERE user_id = $1", user)
        )
    assert payload == stored
    assert (payload["seq"], payload["job_id"], payload["processed"]) == (1, str(job), 3)
    assert payload["message"] == "Fetched 3 of 10 videos"
    assert len(payload["at"]) == len("2026-11-29T10:00:00.123Z")
    assert payload["at"].endswith("Z")


async def test_the_trigger_leaves_the_job_row_alone(database_url: str) -> None:
    """The trigger numbers events and notifies, and writes nothing else: jobs.last_seq is the writer's
    to keep (app/services/jobs.write_event), so an event costs no UPDATE of the job row in the trigger."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        await insert_event(conn, user, job)
        await insert_events(conn, user, job, 2)
        assert await conn.fetchval("SELECT last_seq FROM jobs WHERE id = $1", job) is None
        assert await seqs_of(conn, user) == [1, 2, 3]


async def test_a_rolled_back_event_sends_nothing_and_uses_no_seq(database_url: str) -> None:
    """A rolled-back insert is never delivered, and the next committed event takes the very next seq."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        async with listening(database_url, user) as listener:
            assert await insert_event(conn, user, job) == 1
            transaction = conn.transaction()
            await transaction.start()
            assert await insert_event(conn, user, job, doomed=True) == 2
            await transaction.rollback()
            assert await insert_event(conn, user, job) == 2
            delivered = await listener.take(2)
            assert listener.payloads.empty()
        assert [event["seq"] for event in delivered] == [1, 2]
        assert all("doomed" not in event for event in delivered)
        assert await seqs_of(conn, user) == [1, 2]
        assert await conn.fetchval("SELECT last_seq FROM progress_streams WHERE user_id = $1", user) == 2


async def test_an_insert_that_fails_after_the_trigger_sends_nothing(database_url: str) -> None:
    """The NOTIFY is queued in the BEFORE trigger; an INSERT that fails after it (here its NOT NULL check)
    inside a savepoint takes its notification and its seq with it, though the transaction commits."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        async with listening(database_url, user) as listener:
            async with conn.transaction():
                try:
                    async with conn.transaction():  # a savepoint
                        await conn.execute(INSERT_EVENT, user, None, '{"status": "running"}')
                except asyncpg.NotNullViolationError:
                    pass
                assert await insert_event(conn, user, job) == 1
            delivered = await listener.take(1)
            await asyncio.sleep(0.2)  # a stray second notification would have arrived with the first
            assert listener.payloads.empty()
        assert [event["seq"] for event in delivered] == [1]
        assert await seqs_of(conn, user) == [1]


async def test_a_waiting_writer_gets_the_seq_after_a_rolled_back_one(database_url: str) -> None:
    """A writer blocked behind an uncommitted event takes that event's seq once it rolls back: no gap."""
    async with connection(database_url) as first, connection(database_url) as second:
        user = await new_user(first)
        job = await new_job(first, user)
        transaction = first.transaction()
        await transaction.start()
        assert await insert_event(first, user, job) == 1
        blocked = asyncio.create_task(insert_event(second, user, job))
        async with asyncio.timeout(WAIT_S):
            while not await _waits_on_a_lock(first, second):
                await asyncio.sleep(0.01)  # nothing to await: Postgres does not announce lock waits
        assert not blocked.done()
        await transaction.rollback()
        async with asyncio.timeout(WAIT_S):
            assert await blocked == 1
        assert await seqs_of(first, user) == [1]


async def _waits_on_a_lock(observer: asyncpg.Connection, waiter: asyncpg.Connection) -> bool:
    event_type = await observer.fetchval(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", waiter.get_server_pid()
    )
    return bool(event_type == "Lock")


async def test_an_oversized_payload_is_sent_as_a_truncated_marker(database_url: str) -> None:
    """Up to 7900 bytes the event is sent whole; one byte more and it becomes {seq, job_id, truncated}."""
    async with connection(database_url) as conn:
        user = await new_user(conn)
        job = await new_job(conn, user)
        async with listening(database_url, user) as listener:
            await insert_event(conn, user, job, message="")
            overhead = await conn.fetchval(
                "SELECT octet_length(data::text) FROM progress_events WHERE user_id = $1", user
            )
            await insert_event(conn, user, job, message="x" * (7900 - overhead))
            await insert_event(conn, user, job, message="x" * (7901 - overhead))
            await insert_event(conn, user, job, message="é" * 4000)
            delivered = await listener.take(4)
        sizes = await conn.fetch(
            "SELECT seq, octet_length(data::text) AS size, data->>'message' AS message FROM progress_events "
            "WHERE user_id = $1 ORDER BY seq",
            user,
        )
    assert [row["size"] for row in sizes[1:3]] == [7900, 7901]
    assert delivered[1]["seq"] == 2
    assert delivered[1]["message"] == "x" * (7900 - overhead)
    for event in delivered[2:]:
        assert event == {"seq": event["seq"], "job_id": str(job), "truncated": True}
    assert [event["seq"] for event in delivered] == [1, 2, 3, 4]
    assert sizes[3]["message"] == "é" * 4000  # the row keeps the whole event; only the NOTIFY is cut


async def test_another_users_channel_receives_nothing(database_url: str) -> None:
    """Events go only to their owner's channel: Bob's listener first hears Bob's own, later event."""
    async with connection(database_url) as conn:
        alice, bob = await new_user(conn), await new_user(conn)
        alice_job, bob_job = await new_job(conn, alice), await new_job(conn, bob)
        async with listening(database_url, alice) as alices, listening(database_url, bob) as bobs:
            for _ in range(3):
                await insert_event(conn, alice, alice_job)
            await insert_event(conn, bob, bob_job)
            # Notifications arrive in commit order, so anything of Alice's would come before Bob's own.
            first = await bobs.next()
            assert await alices.take(3)
        assert (first["seq"], first["job_id"]) == (1, str(bob_job))
        assert bobs.payloads.empty()
        assert alices.payloads.empty()
