"""Postgres itself restarting mid-stream: the hub reconnects, catches up from the table, loses nothing.

Runs on a private cluster (pg_createcluster) so the shared server other tests use is never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.settings import Settings
from testkit.accounts import create_account
from testkit.harness import EventWriter, LiveClient, ServerProcess, app_env, table_seqs
from tests.acceptance.cluster import create_database, private_cluster, restart_cluster

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with private_cluster(tmp_path) as admin_url_and_name:
        yield admin_url_and_name


@pytest.fixture
async def cluster_database(cluster: tuple[str, str]) -> str:
    return await create_database(cluster[0])


async def write_through_outages(dsn: str, writer: EventWriter, count: int) -> None:
    """Like a worker: a failed transaction is retried on a new connection until it commits."""
    written = 0
    conn: asyncpg.Connection | None = None
    while written < count:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(dsn, timeout=2)
                if written == 0:
                    await writer.create_job(conn)
            await writer.write(conn)
            written += 1
            await asyncio.sleep(0.01)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
            if conn is not None:
                conn.terminate()
            conn = None
            await asyncio.sleep(0.1)
    if conn is not None:
        await conn.close()


async def test_postgres_restart_mid_stream_loses_nothing(
    cluster: tuple[str, str], cluster_database: str, tmp_path: Path
) -> None:
    """`pg_ctlcluster restart` while events flow: the socket stays open and receives every seq once, in order."""
    _, name = cluster
    engine = create_async_engine(Settings(database_url=cluster_database).sqlalchemy_url)
    try:
        account = await create_account(
            async_sessionmaker(engine, expire_on_commit=False), "restart@example.com"
        )
    finally:
        await engine.dispose()
    server = ServerProcess(env=app_env(cluster_database), log_path=tmp_path / "server.log")
    await server.start()
    try:
        count = 300
        client = LiveClient(server.ws_url, account.token, stop_when=lambda ledger: ledger.last_seq == count)
        reader = asyncio.create_task(client.run(deadline_s=120))
        async with asyncio.timeout(15):
            while not client.ledger.resumed:
                await asyncio.sleep(0.01)
        writer = EventWriter(cluster_database, account.user_id, total=count)
        producing = asyncio.create_task(write_through_outages(cluster_database, writer, count))
        async with asyncio.timeout(30):
            while writer.processed < 50:
                await asyncio.sleep(0.01)
        (await asyncio.to_thread(restart_cluster, name)).check_returncode()
        await producing
        ledger = await reader
        assert ledger.seqs == await table_seqs(cluster_database, account.user_id)
        assert ledger.seqs == list(range(1, count + 1))
        assert ledger.connects == 1, "the socket must stay open while Postgres restarts"
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
