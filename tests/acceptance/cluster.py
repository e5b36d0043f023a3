"""A private PostgreSQL cluster for the tests that restart Postgres (made with Debian's pg_createcluster, as root): the
shared server the other tests use is never disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from app import database
from app.settings import Settings, replace_database
from testkit.harness import free_port

PG_VERSION = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")])[
    -1
].name


@contextlib.contextmanager
def private_cluster(log_dir: Path) -> Iterator[tuple[str, str]]:
    """A throwaway cluster on a free port; yields (admin URL, name). Its
    server log is copied into `log_dir` before it is dropped, even when the run fails."""
    name = f"private{uuid.uuid4().hex[:8]}"
    port = free_port()
    try:
        subprocess.run(
            ["pg_createcluster", PG_VERSION, name, "--port", str(port), "--start-conf", "manual", "--start",
             "--", "--auth=trust"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", name
    finally:
        server_log = Path(f"/var/log/postgresql/postgresql-{PG_VERSION}-{name}.log")
        if server_log.exists():
            shutil.copy(server_log, log_dir / "postgres.log")
        subprocess.run(
            ["pg_dropcluster", PG_VERSION, name, "--stop"], check=False, capture_output=True, timeout=120
        )


async def create_database(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute("CREATE DATABASE bookmarks")
    finally:
        await conn.close()
    url = replace_database(admin_url, "bookmarks")
    await asyncio.to_thread(database.upgrade, Settings(database_url=url))
    return url
