"""A private PostgreSQL cluster for the tests that restart Postgres: the shared server the other tests use
is never disturbed.

Made with Debian's `pg_createcluster` (the machine's PostgreSQL, as root), or, when `TEST_POSTGRES_BINDIR`
names a directory of PostgreSQL programs (the embedded PostgreSQL 18 pass, tests/pg18_pass.py), with its
`initdb` and `pg_ctl`, run as the `pgserver` user when the tests run as root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from app import database
from app.embedded import give_to_system_user, system_user
from app.settings import Settings, replace_database
from testkit.harness import free_port

PG_VERSION = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")])[
    -1
].name
POSTGRES_BINDIR = os.environ.get("TEST_POSTGRES_BINDIR")


@contextlib.contextmanager
def private_cluster(log_dir: Path) -> Iterator[tuple[str, str]]:
    """A throwaway cluster on a free port; yields (admin URL, name). Its
    server log is copied into `log_dir` before it is dropped, even when the run fails."""
    if POSTGRES_BINDIR:
        with binaries_cluster(Path(POSTGRES_BINDIR), log_dir) as cluster:
            yield cluster
        return
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


def restart_cluster(name: str) -> subprocess.CompletedProcess[bytes]:
    """Restart a private cluster (fast shutdown, as `pg_ctlcluster restart` does) and wait until it is up."""
    if POSTGRES_BINDIR:
        log = Path(name).parent / "server.log"
        return as_postgres(
            [Path(POSTGRES_BINDIR) / "pg_ctl", "-D", name, "-l", log, "-w", "-m", "fast", "restart"]
        )
    return subprocess.run(
        ["pg_ctlcluster", PG_VERSION, name, "restart"], capture_output=True, timeout=120, check=False
    )


@contextlib.contextmanager
def binaries_cluster(bindir: Path, log_dir: Path) -> Iterator[tuple[str, str]]:
    """`private_cluster` from a directory of PostgreSQL programs; its name is its data directory."""
    home = Path(tempfile.mkdtemp(prefix="pgcluster-"))
    pgdata, server_log, port = home / "pgdata", home / "server.log", free_port()
    try:
        give_to_system_user(home)
        as_postgres([bindir / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust"]).check_returncode()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{home}'"
        start: list[str | Path] = [
            bindir / "pg_ctl",
            "-D",
            pgdata,
            "-o",
            options,
            "-l",
            server_log,
            "-w",
            "start",
        ]
        as_postgres(start).check_returncode()
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", str(pgdata)
    finally:
        if server_log.exists():
            shutil.copy(server_log, log_dir / "postgres.log")
        as_postgres([bindir / "pg_ctl", "-D", pgdata, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(home, ignore_errors=True)


def as_postgres(command: list[str | Path]) -> subprocess.CompletedProcess[bytes]:
    """A PostgreSQL program, as the `pgserver` user when we are root (PostgreSQL refuses to run as root)."""
    args = [str(part) for part in command]
    return subprocess.run(args, user=system_user(), capture_output=True, timeout=120, check=False)


async def create_database(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute("CREATE DATABASE bookmarks")
    finally:
        await conn.close()
    url = replace_database(admin_url, "bookmarks")
    await asyncio.to_thread(database.upgrade, Settings(database_url=url))
    return url
