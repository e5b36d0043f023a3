"""`bookmarks run` on a data directory that the old embedded default made (pgserver 0.1.4, PostgreSQL 16.2):
it upgrades it to PostgreSQL 18 once, keeps the old directory as a backup, and loses nothing; when the
upgrade fails, the directory is exactly as it was and the message says what to do."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app import database, embedded
from app.settings import Settings
from testkit.accounts import Account, create_account
from testkit.harness import ROOT, EventWriter, free_port
from tests.acceptance.test_embedded_postgres import postgres_processes, wait_healthy

old_pgserver = pytest.importorskip("pgserver.postgres_server", reason="pgserver 0.1.4 has no wheel here")
pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test

TABLES = ("users", "api_tokens", "bookmark_lists", "videos", "jobs", "progress_events", "progress_streams")
EVENTS_PER_USER = 40
VIDEOS_PER_LIST = 60


@contextlib.contextmanager
def old_embedded_server(pgdata: Path) -> Iterator[str]:
    """The old default, exactly as `bookmarks run` started it: pgserver 0.1.4's PostgreSQL 16.2."""
    server = old_pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        # Done: its exit hook would only log, after pytest has closed the stream its logging writes to.
        atexit.unregister(server._cleanup)


def socket_url(pgdata: Path) -> str:
    """How the app reaches its embedded server: a unix socket in the data directory, database `postgres`."""
    return f"postgresql://postgres:@/postgres?host={pgdata}"


async def fill(url: str) -> list[Account]:
    """Two users, each with a token, two lists of videos and a job that wrote its progress events."""
    engine = create_async_engine(Settings(database_url=url).sqlalchemy_url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        accounts = [await create_account(sessions, f"user{n}@example.com") for n in (1, 2)]
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        for account in accounts:
            for name in ("Music", "Talks"):
                list_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO bookmark_lists (id, user_id, name, created_at, updated_at)"
                    " VALUES ($1, $2, $3, now(), now())",
                    list_id, account.user_id, name,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO videos (id, list_id, user_id, youtube_id, status, title, view_count, created_at,"
                    " updated_at) SELECT gen_random_uuid(), $1, $2, lpad(g::text, 11, 'v'), 'ready',"
                    " 'Video ' || g, g * 1000, now(), now() FROM generate_series(1, $3) g",
                    list_id, account.user_id, VIDEOS_PER_LIST,
                )  # fmt: skip
            writer = EventWriter(url, account.user_id, total=EVENTS_PER_USER)
            await writer.create_job(conn)
            for _ in range(EVENTS_PER_USER):
                await writer.write(conn)
    finally:
        await conn.close()
    return accounts


async def table_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table the app owns, as text, in a stable order."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET TimeZone = 'UTC'")
        return {
            table: [row[0] for row in await conn.fetch(f"SELECT t::text FROM {table} t ORDER BY 1")]
            for table in TABLES
        }
    finally:
        await conn.close()


async def user_seqs(url: str) -> dict[uuid.UUID, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT user_id, last_seq FROM progress_streams")
    finally:
        await conn.close()
    return {row["user_id"]: row["last_seq"] for row in rows}


def tree_digest(path: Path) -> dict[str, tuple[int, int, int, str]]:
    """Each file under `path`: (mode, size, mtime_ns, sha256): any write to the directory changes it."""
    digest = {}
    for each in sorted(path.rglob("*")):
        info = each.lstat()
        content = hashlib.sha256(each.read_bytes()).hexdigest() if each.is_file() else ""
        digest[str(each.relative_to(path))] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return digest


def start_bookmarks_run(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"BOOKMARKS_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import run_cli; run_cli()", "run", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGINT (Ctrl-C) and the output; the server it started stops with it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()  # a pipe left open fails a later test with a ResourceWarning
    text = output.decode(errors="replace")
    print(text)  # pytest shows it when the test fails
    return text


async def wait_stopped(data_dir: Path) -> None:
    async with asyncio.timeout(15):
        while postgres_processes(data_dir):
            await asyncio.sleep(0.2)


async def test_bookmarks_run_upgrades_a_postgres_16_directory_and_every_row_survives(data_dir: Path) -> None:
    """A 16.2 directory holding users, tokens, lists, videos, a job and its events: `bookmarks run` says
    it upgrades and where the backup is, then serves on PostgreSQL 18 with every row and each user's seq;
    the next event continues each user's seq, and the old directory is kept as it was."""
    pgdata = data_dir / "pgdata"
    with old_embedded_server(pgdata) as old_url:
        assert (await asyncpg_fetchval(old_url, "SHOW server_version")).startswith("16.2")
        await asyncio.to_thread(database.upgrade, Settings(database_url=old_url))
        accounts = await fill(old_url)
        rows_before, seqs_before = await table_rows(old_url), await user_seqs(old_url)
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"
    assert seqs_before == {account.user_id: EVENTS_PER_USER for account in accounts}

    port = free_port()
    process = start_bookmarks_run(data_dir, port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/api/health", process, timeout_s=180)
        url = socket_url(pgdata)
        rows_after, seqs_after = await table_rows(url), await user_seqs(url)  # before a request uses a token
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            health = (await client.get("/api/health")).json()
            lists = (await client.get("/api/lists", headers=accounts[0].headers)).json()
        writer = EventWriter(url, accounts[0].user_id)
        conn = await asyncpg.connect(url)
        try:
            await writer.create_job(conn)
            next_seq = await writer.write(conn)
        finally:
            await conn.close()
    finally:
        output = await stop(process)
    await wait_stopped(data_dir)

    assert health["database"]["server_version"].startswith("18."), health
    assert health["database"]["warning"] is None
    assert sorted(item["name"] for item in lists["items"]) == ["Music", "Talks"]
    assert rows_after == rows_before
    per_user = {"users": 1, "api_tokens": 1, "bookmark_lists": 2, "videos": 2 * VIDEOS_PER_LIST, "jobs": 1,
                "progress_events": EVENTS_PER_USER, "progress_streams": 1}  # fmt: skip
    assert {table: len(rows) for table, rows in rows_after.items()} == {t: 2 * n for t, n in per_user.items()}
    assert seqs_after == seqs_before
    assert next_seq == EVENTS_PER_USER + 1
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    backups = list(data_dir.glob("pgdata-pg16-backup-*"))
    assert len(backups) == 1
    assert (backups[0] / "PG_VERSION").read_text().strip() == "16"
    upgrading = [line for line in output.splitlines() if line.startswith("Upgrading the embedded PostgreSQL")]
    assert len(upgrading) == 1, output
    assert upgrading[0].startswith("Upgrading the embedded PostgreSQL from 16 to 18 (once, ")
    assert upgrading[0].endswith(f" MB): your 16 data stays as it is and is kept as {backups[0]}")
    assert not list(data_dir.glob(".pg-upgrade-*")), "the working folder is removed"


async def test_a_failed_upgrade_changes_nothing_and_says_what_to_do(data_dir: Path) -> None:
    """pg_upgrade refuses a 16.2 directory with a reg* column: `bookmarks run` exits non-zero saying nothing
    changed, where the logs are and what to do; the directory is byte for byte as it was, no server left."""
    pgdata = data_dir / "pgdata"
    with old_embedded_server(pgdata) as old_url:
        await asyncpg_execute(old_url, "CREATE TABLE legacy (f regproc); INSERT INTO legacy VALUES ('now')")
    before = tree_digest(pgdata)

    process = start_bookmarks_run(data_dir, free_port())
    try:
        await asyncio.to_thread(process.wait, timeout=180)
    finally:
        output = await stop(process)
    await wait_stopped(data_dir)

    assert process.returncode != 0, output
    assert "Upgrading the embedded PostgreSQL from 16 to 18 failed: pg_upgrade exited with 1" in output
    assert f"Nothing was changed: your data is still in {pgdata}." in output
    logs = next(data_dir.glob("pg-upgrade-failed-*"))
    assert f"pg_upgrade's logs are in {logs}." in output
    assert list(logs.rglob("tables_using_reg.txt")), "pg_upgrade's report is kept"
    assert "run again, or set DATABASE_URL to a PostgreSQL server of your own" in output
    assert tree_digest(pgdata) == before
    assert not list(data_dir.glob(".pg-upgrade-*"))
    assert not list(data_dir.glob("pgdata-pg16-backup-*"))


async def test_an_upgrade_cut_short_between_its_renames_is_finished_by_the_next_start(data_dir: Path) -> None:
    """Killed after the 16 directory stepped aside but before the 18 one took its place: the next start puts
    the upgraded directory in place, rows and all, instead of starting on a new, empty one."""
    pgdata = data_dir / "pgdata"
    said: list[str] = []
    with old_embedded_server(pgdata) as old_url:
        await asyncpg_execute(old_url, "CREATE TABLE kept AS SELECT generate_series(1, 100) AS n")
    backup = await asyncio.to_thread(embedded.upgrade, pgdata, 16, said.append)
    cut_short = data_dir / f"{embedded.WORK_PREFIX}killed"  # the state between the two renames
    cut_short.mkdir()
    pgdata.rename(cut_short / "pg18")
    (cut_short / embedded.FINISHED_MARK).write_text(f"{backup}\n")

    server = await asyncio.to_thread(embedded.start, pgdata, said.append)
    try:
        kept = await asyncpg_fetchval(server.get_uri(), "SELECT count(*) FROM kept")
    finally:
        server.cleanup()
        atexit.unregister(server._cleanup)
    assert kept == "100"
    assert said[-1] == f"Finished an interrupted upgrade to PostgreSQL 18; the old data is in {backup}"
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    assert not cut_short.exists()


async def asyncpg_fetchval(url: str, sql: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval(sql))
    finally:
        await conn.close()


async def asyncpg_execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
