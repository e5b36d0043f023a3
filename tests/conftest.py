"""Shared fixtures: a real Postgres, a template database built once by the migrations, a clone per test.

Set `TEST_DATABASE_URL` to a server where the test user may create databases (default: the local one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import database
from app.asgi import create_app
from app.settings import Settings, replace_database
from testkit.accounts import Account, create_account

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Property tests: 5,000 examples each in the full suite (scripts/test sets HYPOTHESIS_PROFILE=ci), a
# couple of hundred in the quick loop and when pytest is run by hand.
for _name, _examples in (("ci", 5000), ("dev", 200)):
    hypothesis_settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


async def admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(sql: str) -> None:
    asyncio.run(admin_execute(sql))


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head once per session; each test clones it (CREATE DATABASE ... TEMPLATE)."""
    name = f"bm_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _run(f'CREATE DATABASE "{name}"')
    try:
        database.upgrade(Settings(database_url=replace_database(ADMIN_DSN, name)))
        yield name
    finally:
        _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def scratch_database(prefix: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database (empty, or a clone of `template`) for as long as the block runs; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield replace_database(ADMIN_DSN, name)
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    async with scratch_database("bm_test", template_database) as url:
        yield url


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A brand-new database with nothing in it (not a clone of the migrated template)."""
    async with scratch_database("bm_empty") as url:
        yield url


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """The test database's settings; `@pytest.mark.settings(name=value, ...)` overrides fields."""
    marker = request.node.get_closest_marker("settings")
    overrides = {} if marker is None else marker.kwargs
    return replace(
        Settings(database_url=database_url, run_workers_in_web=False, progress_interval_ms=0), **overrides
    )


@pytest.fixture
async def session_maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def alice(session_maker: async_sessionmaker[AsyncSession]) -> Account:
    return await create_account(session_maker, "alice@example.com")


@pytest.fixture
async def bob(session_maker: async_sessionmaker[AsyncSession]) -> Account:
    return await create_account(session_maker, "bob@example.com")


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
