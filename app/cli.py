"""`bookmarks`: the Litestar CLI with our app preloaded, plus our own commands."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import click
from sqlalchemy.ext.asyncio import AsyncSession

from app.launcher import database_for_cli, in_session, prepare_for_serving
from app.services import users as user_service
from app.settings import Settings
from db.models import ApiToken

T = TypeVar("T")


def run_cli() -> None:
    """Entry point of the `bookmarks` console script."""
    os.environ.setdefault("LITESTAR_APP", "app.asgi:create_app_from_env")
    from litestar.cli.main import litestar_group

    with database_for_cli(sys.argv):
        if sys.argv[1:2] == ["run"]:
            prepare_for_serving(Settings.from_env(), sys.argv)
        litestar_group()


def fail_on_user_error(work: Callable[[], T]) -> T:
    try:
        return work()
    except user_service.UserError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(name="users", help="Manage users.")
def users_group() -> None: ...


@users_group.command(name="create", help="Create a user and print a new API token (last line).")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An operator: may open the queue console at /saq.")
def create_user(email: str, admin: bool) -> None:
    settings = Settings.from_env()

    async def work(session: AsyncSession) -> user_service.IssuedToken:
        user = await user_service.create_user(session, email, admin=admin)
        return await user_service.issue_token(session, user)

    issued = fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"created {'operator' if admin else 'user'} {email.strip().lower()} ({issued.user_id})")
    click.echo(f"token id {issued.token_id}; the token is shown only once:")
    click.echo(issued.secret)


@users_group.command(name="admin", help="Make a user an operator (queue console at /saq), or not.")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the operator role away instead.")
def set_admin(email: str, revoke: bool) -> None:
    settings = Settings.from_env()

    async def work(session: AsyncSession) -> str:
        user = await user_service.set_admin(session, email, not revoke)
        return user.email

    address = fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"{address} is {'no longer ' if revoke else ''}an operator")


@click.group(name="tokens", help="Manage API tokens.")
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
def create_token(email: str, name: str, expires: timedelta | None) -> None:
    settings = Settings.from_env()

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
def revoke_token(token_id: UUID) -> None:
    settings = Settings.from_env()

    async def work(session: AsyncSession) -> None:
        await user_service.revoke_token(session, token_id)

    fail_on_user_error(lambda: in_session(settings, work))
    click.echo(f"revoked token {token_id}")


@tokens_group.command(name="list", help="List a user's tokens (never the secrets).")
@click.argument("email")
def list_tokens(email: str) -> None:
    settings = Settings.from_env()

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


@click.group(name="workers", help="Run SAQ workers that fetch video metadata.")
def workers_group() -> None: ...


@workers_group.command(name="run", help="Run a worker process until SIGINT/SIGTERM.")
@click.option("--concurrency", type=int, default=None, help="Jobs at once (default: WORKER_CONCURRENCY).")
def run_workers(concurrency: int | None) -> None:
    from dataclasses import replace

    from workers.worker import run_worker

    settings = Settings.from_env()
    if concurrency is not None:
        settings = replace(settings, worker_concurrency=concurrency)
    click.echo(f"worker: {settings.worker_concurrency} jobs at once", err=True)
    asyncio.run(run_worker(settings))


server_option = click.option(
    "--server",
    envvar="BOOKMARKS_SERVER",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The app's base URL (env BOOKMARKS_SERVER).",
)
token_option = click.option(
    "--token", envvar="BOOKMARKS_TOKEN", required=True, help="An API token (env BOOKMARKS_TOKEN)."
)


def run_client(work: Coroutine[Any, Any, int]) -> None:
    import logging

    from app.terminal import ClientError

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would tear the bars

    code: int
    try:
        code = asyncio.run(work)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


@click.command(name="import", help="Import a CSV, Takeout export or list of links, with live progress bars.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, help="The list to import into (created if missing).")
@server_option
@token_option
def import_command(file: Path, list_name: str, server: str, token: str) -> None:
    from app.terminal import import_file

    run_client(import_file(server.rstrip("/"), token, file, list_name))


@click.command(name="watch", help="Show every running job live (Ctrl-C to stop).")
@server_option
@token_option
def watch_command(server: str, token: str) -> None:
    from app.terminal import watch

    run_client(watch(server.rstrip("/"), token))


def register_commands(cli: click.Group) -> None:
    from app.serving import run_command

    cli.add_command(run_command)  # replaces Litestar's `run`, which cannot pass uvicorn our options
    cli.add_command(import_command)
    cli.add_command(watch_command)
    cli.add_command(users_group)
    cli.add_command(tokens_group)
    cli.add_command(workers_group)
