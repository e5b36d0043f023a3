"""`bookmarks`: serve the app, manage users and sign-in links, import and watch from a terminal, migrate.

Our own click group (rich-click, for help in panels). A command that uses the database gets it from
`with_database` only after its arguments are parsed, so `--help` never touches one; with `DATABASE_URL`
unset that is the embedded PostgreSQL (app/launcher.py). A problem the user can fix ends the command with
one line on stderr and an exit code from app/exits.py; only a bug prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

import rich_click as click
from click import get_current_context
from sqlalchemy.ext.asyncio import AsyncSession

from app.exits import CommandError, ExitCode
from app.launcher import (
    DEFAULT_SERVER,
    check_can_serve,
    dashboard_url,
    database_errors,
    database_ready,
    in_session,
    prepare_for_serving,
    sign_in_link,
    uvicorn_exits,
)
from app.services import users as user_service
from app.settings import Settings, SettingsError
from app.wording import plural
from db.models import ApiToken

P = ParamSpec("P")
T = TypeVar("T")


def run_cli(args: Sequence[str] | None = None) -> None:
    """Entry point of the `bookmarks` console script."""
    try:
        result = bookmarks.main(args=args, prog_name="bookmarks", standalone_mode=False)
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "bookmarks"
        fail(f"{where}: {error.format_message()} (see `{where} --help`)", ExitCode.USAGE)
    except CommandError as error:
        fail(f"bookmarks: {error}", error.exit_code)
    except click.ClickException as error:
        fail(f"bookmarks: {error.format_message()}", error.exit_code)
    except click.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(result if isinstance(result, int) else ExitCode.OK)


def fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def help_without_command(ctx: click.Context, args: list[str]) -> None:
    """A group typed without a command prints its help and exits 0 (rich-click's own exits 2, which is not
    one of our codes: README, "Exit codes")."""
    if not args and not ctx.resilient_parsing:
        click.echo(ctx.get_help())
        ctx.exit(ExitCode.OK)


class Group(click.RichGroup):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_without_command(ctx, args)
        return super().parse_args(ctx, args)


@click.group(
    name="bookmarks",
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Smart YouTube Bookmarks: bookmark lists of YouTube videos, bulk imports, live progress.\n\n"
    "Commands that use the database read DATABASE_URL; unset, they start the embedded PostgreSQL.",
)
@click.command_panel("Serve", commands=["run", "workers"])
@click.command_panel("Users and sign-in", commands=["users", "tokens", "signin-link"])
@click.command_panel("Import and watch (a running server, over HTTP)", commands=["import", "watch"])
@click.command_panel("Database", commands=["database"])
@click.command_panel("Development", commands=["dev"])
@click.version_option(package_name="smart-youtube-bookmarks", prog_name="bookmarks")
def bookmarks() -> None: ...


# -- the database, for the commands that use it --


def read_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        raise CommandError(str(error), ExitCode.CONFIG) from error


@contextlib.contextmanager
def database_for_command() -> Iterator[Settings]:
    """For work that is all database (the migration commands): any of its errors that says the database
    cannot be reached or used becomes the one line that says so."""
    with database_ready(read_settings()) as settings, database_errors(settings):
        yield settings


def with_database(command: Callable[Concatenate[Settings, P], T]) -> Callable[P, T]:
    """The command runs with the settings of a running database as its first argument. Its database work
    translates its own errors (`in_session`, `database_errors`): an OSError of anything else (a port in
    use, a certificate file) is not "cannot reach the database"."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with database_ready(read_settings()) as settings:
            return command(settings, *args, **kwargs)

    return run


def fail_on_user_error(work: Callable[[], T]) -> T:
    try:
        return work()
    except user_service.UserError as error:
        raise CommandError(str(error), ExitCode.DATA) from error


# -- serve --


@click.command(
    name="run",
    short_help="Serve the dashboard, the API and the workers.",
    help="Serve the app: apply the migrations, create a first user on an empty database, then serve the"
    " dashboard and the API (with the workers in-process unless RUN_WORKERS_IN_WEB=false).",
)
@click.option("-H", "--host", default="127.0.0.1", show_default=True, help="Listen on this address.")
@click.option("-p", "--port", type=int, default=8000, show_default=True, help="Listen on this port.")
@click.option(
    "-W",
    "--wc",
    "--web-concurrency",
    "web_concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Web processes (each with its own live hub and, with RUN_WORKERS_IN_WEB, its own worker).",
)
@click.option("-r", "--reload", is_flag=True, help="Restart when the code changes (development).")
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this certificate...",
)
@click.option(
    "--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None, help="...and this key."
)
@with_database
def run_command(
    settings: Settings,
    host: str,
    port: int,
    web_concurrency: int,
    reload: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    import uvicorn

    from app.logs import configure_logging
    from app.serving import APP, uvicorn_options

    check_can_serve(host, port, ssl_certfile, ssl_keyfile)
    prepare_for_serving(settings, dashboard_url(host, port, tls=ssl_certfile is not None))
    configure_logging(settings)  # uvicorn's own lines too; the app applies the same rules when built
    with uvicorn_exits():
        uvicorn.run(
            APP,
            factory=True,
            host=host,
            port=port,
            workers=web_concurrency,
            reload=reload,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_config=None,
            # Proxy trust, the header deadline (README, "Security"): the options the tests' servers get too.
            **uvicorn_options(settings),
        )


@click.group(name="workers", cls=Group, help="Run SAQ workers that fetch video metadata.")
def workers_group() -> None: ...


@workers_group.command(name="run", help="Run a worker process until SIGINT/SIGTERM.")
@click.option("--concurrency", type=int, default=None, help="Jobs at once (default: WORKER_CONCURRENCY).")
@with_database
def run_workers(settings: Settings, concurrency: int | None) -> None:
    from app.logs import configure_logging
    from workers.worker import run_worker

    if concurrency is not None:
        settings = replace(settings, worker_concurrency=concurrency)
    configure_logging(settings)
    click.echo(f"worker: {plural(settings.worker_concurrency, 'job')} at once", err=True)
    with database_errors(settings):  # all it does is database work: a lost database is that one line
        asyncio.run(run_worker(settings))


# -- users and sign-in --


@click.group(name="users", cls=Group, help="Manage users.")
def users_group() -> None: ...


@users_group.command(name="list", help="List the users, oldest first, with their active tokens.")
@with_database
def list_users(settings: Settings) -> None:
    users = in_session(settings, user_service.list_users)
    if not users:
        click.echo("no users yet: `bookmarks run` creates the first one", err=True)
        return
    width = max(len(user.email) for user in users)
    for user in users:
        role = "operator" if user.is_admin else "user"
        click.echo(
            f"{user.email:<{width}}  {role:<8}  created {user.created_at:%Y-%m-%d %H:%M}  "
            f"{plural(user.active_tokens, 'active token')}"
        )


@users_group.command(name="create", help="Create a user and print a new API token (last line).")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An operator: may open the queue console at /saq/.")
@with_database
def create_user(settings: Settings, email: str, admin: bool) -> None:
    async def work(session: AsyncSession) -> user_service.IssuedToken:
        user = await user_service.create_user(session, email, admin=admin)
        return await user_service.issue_token(session, user)

    issued = fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"created {'operator' if admin else 'user'} {email.strip().lower()} ({issued.user_id})")
    click.echo(f"token id {issued.token_id}; the token is shown only once:")
    click.echo(issued.secret)


@users_group.command(name="admin", help="Make a user an operator (queue console at /saq/), or not.")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the operator role away instead.")
@with_database
def set_admin(settings: Settings, email: str, revoke: bool) -> None:
    async def work(session: AsyncSession) -> str:
        user = await user_service.set_admin(session, email, not revoke)
        return user.email

    address = fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"{address} is {'no longer ' if revoke else ''}an operator")


@click.group(name="tokens", cls=Group, help="Manage API tokens.")
def tokens_group() -> None: ...


class Duration(click.ParamType[timedelta]):
    """`30d`, `12h` or `90m`."""

    name = "duration"
    UNITS = {"d": "days", "h": "hours", "m": "minutes"}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        number, unit = text[:-1], text[-1:]
        if unit not in self.UNITS or not number.isdigit() or int(number) == 0:
            self.fail(f"{value!r} is not a duration like 30d, 12h or 90m", param, ctx)
        return timedelta(**{self.UNITS[unit]: int(number)})


@tokens_group.command(name="create", help="Issue a new API token for a user (printed last, once).")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label to recognise the token by.")
@click.option("--expires", type=Duration(), default=None, help="Valid for this long: 30d, 12h or 90m.")
@with_database
def create_token(settings: Settings, email: str, name: str, expires: timedelta | None) -> None:
    async def work(session: AsyncSession) -> user_service.IssuedToken:
        user = await user_service.get_user_by_email(session, email)
        return await user_service.issue_token(session, user, name, expires_in=expires)

    issued = fail_on_user_error(lambda: in_session(settings, work))
    if issued.expires_at is not None:
        click.echo(f"expires {issued.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo(f"token id {issued.token_id}; the token is shown only once:")
    click.echo(issued.secret)


@tokens_group.command(name="revoke", help="Revoke a token by its id.")
@click.argument("token_id", type=click.UUID)
@with_database
def revoke_token(settings: Settings, token_id: UUID) -> None:
    async def work(session: AsyncSession) -> None:
        await user_service.revoke_token(session, token_id)

    fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"revoked token {token_id}")


@tokens_group.command(name="list", help="List a user's tokens (never the secrets).")
@click.argument("email")
@with_database
def list_tokens(settings: Settings, email: str) -> None:
    async def work(session: AsyncSession) -> list[str]:
        user = await user_service.get_user_by_email(session, email)
        tokens = await user_service.list_tokens(session, user)
        return [
            f"{t.id}  {t.name:<20} created {t.created_at:%Y-%m-%d %H:%M}  {token_state(t)}" for t in tokens
        ]

    for line in fail_on_user_error(lambda: in_session(settings, work)):
        click.echo(line)


def token_state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is None:
        return "active"
    verb = "expired" if token.expires_at <= datetime.now(UTC) else "expires"
    return f"{verb} {token.expires_at:%Y-%m-%d %H:%M}"


server_option = click.option(
    "--server",
    envvar="BOOKMARKS_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="The app's address, as a browser reaches it (env BOOKMARKS_SERVER).",
)


@click.command(
    name="signin-link",
    short_help="Print a sign-in link for the dashboard.",
    help="Print a link that signs the browser in to the dashboard: a new token each time, for EMAIL or,"
    " without one, for the first user.",
)
@click.argument("email", required=False)
@server_option
@with_database
def signin_link(settings: Settings, email: str | None, server: str) -> None:
    async def work(session: AsyncSession) -> tuple[str, str]:
        if email:
            user = await user_service.get_user_by_email(session, email)
        else:
            user = await user_service.first_user(session)
        issued = await user_service.issue_token(session, user, "sign-in link")
        return user.email, issued.secret

    address, secret = fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"Sign-in link for {address} (a new token, shown only once):", err=True)
    click.echo(sign_in_link(server.rstrip("/"), secret))


# -- import and watch (clients of a running server) --

token_option = click.option("--token", envvar="BOOKMARKS_TOKEN", help="An API token (env BOOKMARKS_TOKEN).")


def required_token(token: str | None) -> str:
    if not token:
        raise CommandError(
            "no API token: pass --token or set BOOKMARKS_TOKEN (`bookmarks tokens create EMAIL` prints one)",
            ExitCode.USAGE,
        )
    return token


def run_client(work: Coroutine[Any, Any, int]) -> None:
    try:
        code = asyncio.run(work)
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    sys.exit(code)


@click.command(
    name="import",
    help="Import a CSV or a list of links into a list (--list), or a whole Google Takeout .zip (a list of"
    " each playlist, made if missing), with live progress bars.",
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--list",
    "list_name",
    help="The list to import into (created if missing). Not for a Takeout .zip: it names its own lists.",
)
@server_option
@token_option
def import_command(file: Path, list_name: str | None, server: str, token: str | None) -> None:
    from app.imports.takeout import is_zip
    from app.terminal import import_file, import_takeout

    takeout = is_zip(first_bytes(file))
    if takeout and list_name is not None:
        raise click.UsageError(
            f"{file} is a zip (a Google Takeout archive): it makes a list of each playlist, so drop --list"
        )
    if not takeout and (list_name is None or not list_name.strip()):
        raise click.UsageError(
            "Missing option '--list'. It names the list to import into (a Takeout .zip needs none)."
        )
    server, token = server.rstrip("/"), required_token(token)
    if list_name is None:
        run_client(import_takeout(server, token, file))
    else:
        run_client(import_file(server, token, file, list_name.strip()))


def first_bytes(file: Path) -> bytes:
    """The file's first bytes (enough to tell a zip), or the one line that says why it cannot be read."""
    try:
        with file.open("rb") as opened:
            return opened.read(4)
    except OSError as error:
        raise CommandError(f"cannot read {file}: {error.strerror or error}", ExitCode.NO_INPUT) from error


@click.command(name="watch", help="Show every running job live (Ctrl-C to stop).")
@server_option
@token_option
def watch_command(server: str, token: str | None) -> None:
    from app.terminal import watch

    run_client(watch(server.rstrip("/"), required_token(token)))


# -- the database: advanced-alchemy's Alembic commands --


@click.group(
    name="database", cls=Group, help="Apply or inspect the migrations (advanced-alchemy's Alembic commands)."
)
def database_group() -> None: ...


def with_migration_config(callback: Callable[..., Any]) -> Callable[..., Any]:
    """advanced-alchemy's commands read their config from the context: ours, built from the settings."""
    from app.database import alchemy_config

    @functools.wraps(callback)
    def run(**options: Any) -> Any:
        if options.get("no_prompt") is False and not sys.stdin.isatty():
            raise CommandError(
                "this command asks for confirmation and there is no terminal to answer it: add --no-prompt",
                ExitCode.USAGE,
            )
        with database_for_command() as settings:
            get_current_context().obj = {"configs": [alchemy_config(settings)]}
            return callback(**options)

    return run


def add_database_commands(group: click.Group) -> None:
    from advanced_alchemy.cli import add_migration_commands

    add_migration_commands(group)
    for command in group.commands.values():
        if command.callback is not None:
            command.callback = with_migration_config(command.callback)


# -- development: Litestar's own commands, against our app --


def add_development_commands(cli: click.Group) -> None:
    from litestar import __version__ as litestar_version
    from litestar.cli._utils import LitestarEnv, LitestarGroup
    from litestar.cli.commands.core import routes_command
    from litestar.cli.commands.schema import schema_group

    class DevGroup(LitestarGroup):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            help_without_command(ctx, args)
            return super().parse_args(ctx, args)

    @click.group(
        name="dev",
        cls=DevGroup,
        help=f"Litestar's developer commands (Litestar {litestar_version.formatted(short=True)}):"
        " the app's routes, its OpenAPI schema.",
    )
    @click.pass_context
    def dev_group(ctx: click.Context) -> None:
        # Litestar's commands call this for the app only once their arguments are parsed.
        def load() -> LitestarEnv:
            from app.asgi import create_app
            from app.serving import APP

            current = get_current_context()
            settings = current.with_resource(database_for_command())
            return LitestarEnv(app_path=APP, app=create_app(settings), cwd=Path.cwd())

        ctx.obj = load

    # Copies: adding a command to a LitestarGroup wraps its callback, and Litestar's own CLI may add these.
    dev_group.add_command(copy.copy(routes_command))
    dev_group.add_command(copy.copy(schema_group))
    cli.add_command(dev_group)


def build() -> None:
    for command in (
        run_command,
        workers_group,
        users_group,
        tokens_group,
        signin_link,
        import_command,
        watch_command,
        database_group,
    ):
        bookmarks.add_command(command)
    add_database_commands(database_group)
    add_development_commands(bookmarks)


build()
