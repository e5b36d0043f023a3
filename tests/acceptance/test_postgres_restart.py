"""Postgres itself restarting mid-stream: the hub reconnects, catches up from the table, loses nothing.

Runs on a private cluster (pg_createcluster) so the shared server other tests use is never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.settings import Settings, replace_database
from db import migrate
from tests.acceptance.harness import EventWriter, LiveClient, ServerProcess, app_env, free_port, table_seqs
from tests.conftest import create_account

PG_VERSION = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")])[
    -1
].name


@pytest.fixture
def private_cluster() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL cluster on a free port; yields (its admin URL, its name)."""
    name = f"restart{uuid.uuid4().hex[:8]}"
    port = free_port()
    subprocess.run(
        ["pg_createcluster", PG_VERSION, name, "--port", str(port), "--start", "--", "--auth=trust"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", name
    finally:
        subprocess.run(["pg_dropcluster", PG_VERSION, name, "--stop"], check=False, capture_output=True)


@pytest.fixture
async def cluster_database(private_cluster: tuple[str, str]) -> str:
    admin_url, _ = private_cluster
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("CREATE DATABASE bookmarks")
    finally:
        await conn.close()
    url = replace_database(admin_url, "bookmarks")
    await asyncio.to_thread(migrate.upgrade, Settings(database_url=url))
    return url


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
    private_cluster: tuple[str, str], cluster_database: str, tmp_path: Path
) -> None:
    """`pg_ctlcluster restart` while events flow: the socket stays open and receives every seq once, in order."""
    _, cluster = private_cluster
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
        await asyncio.to_thread(
            subprocess.run, ["pg_ctlcluster", PG_VERSION, cluster, "restart"], check=True, capture_output=True
        )
        await producing
        ledger = await reader
        assert ledger.seqs == await table_seqs(cluster_database, account.user_id)
        assert ledger.seqs == list(range(1, count + 1))
        assert ledger.connects == 1, "the socket must stay open while Postgres restarts"
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
