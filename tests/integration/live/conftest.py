"""Real-Postgres fixtures for the live hub and store tests.

Each test module gets its own clone of the session's migrated template (tests/conftest.py); tests stay
independent inside a module by using fresh users.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest

from app.live.hub import Hub
from app.live.store import EventStore
from tests.conftest import scratch_database

WAIT_S = 10.0


@pytest.fixture(scope="module")
async def live_dsn(template_database: str) -> AsyncIterator[str]:
    """A private clone of the session's migrated template for one test module."""
    async with scratch_database("live", template_database) as url:
        yield url


@pytest.fixture
async def db(live_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for the test's own writes (the worker's side of the stream)."""
    conn = await asyncpg.connect(live_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def store(live_dsn: str) -> AsyncIterator[EventStore]:
    event_store = await EventStore.open(live_dsn)
    try:
        yield event_store
    finally:
        await event_store.close()


HubFactory = Callable[..., Coroutine[Any, Any, Hub]]


@pytest.fixture
async def make_hub(live_dsn: str, store: EventStore) -> AsyncIterator[HubFactory]:
    """Starts hubs with the given options; stops them all at the end of the test."""
    hubs: list[Hub] = []

    async def start(**options: Any) -> Hub:
        hub = Hub(live_dsn, store, **options)
        await hub.start()
        hubs.append(hub)
        return hub

    try:
        yield start
    finally:
        for hub in hubs:
            await hub.stop()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await make_hub()


class Rows:
    """Writes the rows the live tests need, as the API and the worker would (one transaction each)."""

    def __init__(self, db: asyncpg.Connection) -> None:
        self.db = db

    async def user(self) -> UUID:
        user_id = uuid4()
        await self.db.execute(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES ($1, $2, now(), now())",
            user_id,
            f"{user_id}@example.test",
        )
        return user_id

    async def token(self, user_id: UUID, *, expires_in_s: float | None = None) -> UUID:
        """An API token of the user (the hub only ever sees its id)."""
        token_id = uuid4()
        await self.db.execute(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, expires_at)"
            " VALUES ($1, $2, 'test', $3, now() + make_interval(secs => $4::float8))",
            token_id,
            user_id,
            token_id.hex * 2,
            expires_in_s,
        )
        return token_id

    async def job(
        self,
        user_id: UUID,
        *,
        status: str = "running",
        total: int = 100,
        processed: int = 0,
        failed: int = 0,
        finished_ago_s: float | None = None,
        last_error: str | None = None,
    ) -> UUID:
        job_id = uuid4()
        await self.db.execute(
            """
            INSERT INTO jobs (id, user_id, kind, status, total, processed, failed, last_error,
                              started_at, finished_at)
            VALUES ($1, $2, 'import', $3, $4, $5, $6, $7, now() - interval '1 hour',
                    now() - make_interval(secs => $8::float8))
            """,
            job_id,
            user_id,
            status,
            total,
            processed,
            failed,
            last_error,
            finished_ago_s,
        )
        return job_id

    async def event(
        self, user_id: UUID, job_id: UUID, processed: int = 1, *, message: str | None = None
    ) -> int:
        """Inserts one event in its own transaction (so it is notified on its own) and, as every writer
        does, records its seq as the job's last_seq; returns the seq."""
        seq: int = await self.db.fetchval(
            "WITH event AS (INSERT INTO progress_events (user_id, job_id, data) VALUES ($1, $2, $3::jsonb)"
            " RETURNING seq), job AS (UPDATE jobs SET last_seq = (SELECT seq FROM event) WHERE id = $2)"
            " SELECT seq FROM event",
            user_id,
            job_id,
            event_data(processed, message=message),
        )
        return seq

    async def events(self, user_id: UUID, job_id: UUID, count: int) -> list[int]:
        return [await self.event(user_id, job_id, processed) for processed in range(1, count + 1)]


@pytest.fixture
def rows(db: asyncpg.Connection) -> Rows:
    return Rows(db)


def event_data(processed: int, total: int = 1000, *, message: str | None = None) -> str:
    """The fields a worker writes (the trigger adds seq, job_id and at)."""
    return msgspec.json.encode(
        {
            "list_id": None,
            "status": "running",
            "progress": round(100.0 * processed / total, 1),
            "processed": processed,
            "failed": 0,
            "total": total,
            "rate": 10.0,
            "eta_s": None,
            "message": message if message is not None else f"Fetched {processed} of {total} videos",
            "error": None,
        }
    ).decode()


async def _wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
def wait_until() -> Callable[..., Coroutine[Any, Any, None]]:
    """For states with no event to await (notifications having reached the hub): poll briefly, bounded."""
    return _wait_until
