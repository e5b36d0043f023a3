"""The `bookmarks` command as a person types it: help without side effects, one-line errors with their
exit codes, users and sign-in links, and migrations from a script."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.exits import ExitCode
from testkit.accounts import Account
from testkit.harness import ROOT, free_port

Client = AsyncTestClient[Litestar]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def bookmarks(*args: str, **env: str | None) -> Ran:
    """`bookmarks ARGS` in a subprocess with no terminal; `env` overrides (None removes a variable)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BOOKMARKS_"))}
    environ.update({k: v for k, v in env.items() if v is not None})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import run_cli; run_cli()", *args,
        cwd=ROOT, env=environ, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def table_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    return count


async def test_help_leads_with_our_commands_and_never_touches_a_database(
    empty_database: str, tmp_path: Path
) -> None:
    """`--help` at every level exits 0 without migrating, creating a user or starting a database: an empty
    DATABASE_URL stays empty, and without one no embedded data folder appears. The top-level help lists
    our commands in panels, Litestar's developer commands apart, and no "Using Litestar app" line."""
    data_dir = tmp_path / "data"
    for args in (("run", "--help"), ("database", "upgrade", "--help")):
        ran = await bookmarks(*args, DATABASE_URL=empty_database)
        assert (ran.code, ran.err) == (0, ""), ran
        assert f"Usage: bookmarks {' '.join(args[:-1])}" in ran.out
    assert await table_count(empty_database) == 0, "help must not migrate"

    ran = await bookmarks("run", "--help", BOOKMARKS_DATA_DIR=str(data_dir))
    assert (ran.code, ran.err) == (0, ""), ran
    top = (await bookmarks("--help", BOOKMARKS_DATA_DIR=str(data_dir))).out
    assert not data_dir.exists(), "help must not start the embedded PostgreSQL"
    panels = ["Serve", "Users and sign-in", "Import and watch", "Database", "Development"]
    positions = [top.find(f"─ {panel}") for panel in panels]
    assert -1 not in positions and positions == sorted(positions), top
    assert "Using Litestar app" not in top
    for ours in ("run", "workers", "users", "tokens", "signin-link", "import", "watch", "database", "dev"):
        assert f"│ {ours} " in top, ours
    for litestar_only in ("sessions", "routes", "schema", "info", "version"):
        assert f"│ {litestar_only} " not in top, litestar_only


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        pytest.param(
            ["import", "/no/such/links.csv", "--list", "L", "--token", "t"], {}, ExitCode.NO_INPUT,
            "bookmarks: cannot read /no/such/links.csv: No such file or directory", id="missing file",
        ),
        pytest.param(
            ["import", "README.md", "--list", "L", "--token", "t", "--server", "http://127.0.0.1:{port}"], {},
            ExitCode.UNAVAILABLE, "bookmarks: cannot reach the server at http://127.0.0.1:{port} (connection refused)",
            id="server unreachable",
        ),
        pytest.param(
            ["import", "README.md", "--list", "L"], {}, ExitCode.USAGE,
            "bookmarks: no API token: pass --token or set BOOKMARKS_TOKEN", id="no token",
        ),
        pytest.param(
            ["import", "README.md", "--token", "t"], {}, ExitCode.USAGE,
            "bookmarks import: Missing option '--list'.", id="usage",
        ),
        pytest.param(
            ["users", "list"], {"DATABASE_URL": "postgresql://postgres@127.0.0.1:{port}/x"}, ExitCode.UNAVAILABLE,
            "bookmarks: cannot reach the database at 127.0.0.1:{port}/x", id="database unreachable",
        ),
        pytest.param(
            ["import", "app", "--list", "L", "--token", "t"], {}, ExitCode.NO_INPUT,
            "bookmarks: cannot read app: Is a directory", id="a folder to import",
        ),
        pytest.param(
            ["run", "--port", "{port}", "--ssl-certfile", "/no/such.pem"], {"DATABASE_URL": "postgresql://h/x"},
            ExitCode.USAGE, "bookmarks run: Invalid value for '--ssl-certfile': File '/no/such.pem' does not exist",
            id="no certificate file",
        ),
        pytest.param(
            ["run", "--port", "{port}", "--ssl-certfile", "README.md"],
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:{port}/x"}, ExitCode.CONFIG,
            "bookmarks: cannot serve HTTPS with README.md: not a PEM certificate with its key", id="not a certificate",
        ),
        pytest.param(
            ["users", "list"], {"LOG_LEVEL": "loud", "DATABASE_URL": "postgresql://h/x"}, ExitCode.CONFIG,
            "bookmarks: LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'", id="bad setting",
        ),
    ],
)  # fmt: skip
async def test_a_user_error_is_one_line_on_stderr_with_its_exit_code(
    args: list[str], env: dict[str, str], code: ExitCode, message: str
) -> None:
    """Server unreachable, missing file, no token, a usage mistake, database unreachable, a bad setting, a
    certificate that is missing or none: one line on stderr that starts with what went wrong, the documented
    exit code, no traceback (and a certificate's problem is not called "cannot reach the database")."""
    port = str(free_port())
    ran = await bookmarks(
        *(arg.format(port=port) for arg in args), **{k: v.format(port=port) for k, v in env.items()}
    )
    assert ran.code == code, ran
    assert len(ran.err.splitlines()) == 1, ran.err
    assert ran.err.startswith(message.format(port=port)), ran.err
    assert ran.out == ""


async def test_run_says_its_port_is_in_use_before_touching_the_database() -> None:
    """`bookmarks run` on a port something listens on: one line naming the port, exit 69, not uvicorn's
    exit 1 after migrating, and not "cannot reach the database" (the database here is unreachable)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = await bookmarks(
            "run", "--port", str(port), DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x"
        )
    assert (ran.code, ran.err.splitlines()) == (
        ExitCode.UNAVAILABLE,
        [
            f"bookmarks: port {port} is in use on 127.0.0.1: stop what listens there, or pick another with --port"
        ],
    )


async def test_an_embedded_server_that_cannot_start_is_one_line_and_exit_69(tmp_path: Path) -> None:
    """A data folder that cannot be made (BOOKMARKS_DATA_DIR under a regular file) is one line naming it
    and exit 69, never a traceback."""
    (tmp_path / "a-file").write_text("")
    ran = await bookmarks("users", "list", BOOKMARKS_DATA_DIR=str(tmp_path / "a-file" / "data"))
    assert ran.code == ExitCode.UNAVAILABLE, ran
    assert ran.err.splitlines() == [ran.err.strip()], ran.err
    assert ran.err.startswith(
        f"bookmarks: the embedded PostgreSQL cannot start in {tmp_path / 'a-file' / 'data' / 'pgdata'}"
    ), ran.err


@pytest.mark.parametrize("group", [[], ["users"], ["tokens"], ["workers"], ["database"], ["dev"]])
async def test_a_group_without_a_command_prints_its_help_and_exits_0(group: list[str]) -> None:
    """`bookmarks` or `bookmarks users` alone shows the help (exit 0, as `--help`), not rich-click's 2."""
    ran = await bookmarks(*group)
    assert (ran.code, ran.err) == (0, ""), ran
    assert f"Usage: {' '.join(['bookmarks', *group])} [OPTIONS] COMMAND" in ran.out


async def test_database_commands_refuse_a_prompt_without_a_terminal_and_migrate_with_no_prompt(
    empty_database: str,
) -> None:
    """`database upgrade` from a script: without --no-prompt it says to add it (64) instead of printing
    "Aborted."; with it, it migrates."""
    ran = await bookmarks("database", "upgrade", DATABASE_URL=empty_database)
    assert ran.code == ExitCode.USAGE, ran
    assert ran.err.splitlines() == [
        "bookmarks: this command asks for confirmation and there is no terminal to answer it: add --no-prompt"
    ]
    assert await table_count(empty_database) == 0

    ran = await bookmarks("database", "upgrade", "--no-prompt", DATABASE_URL=empty_database)
    assert ran.code == 0, ran
    assert await table_count(empty_database) > 0


async def test_users_list_and_a_sign_in_link_for_the_first_user_or_anyone(
    client: Client, database_url: str, alice: Account, bob: Account
) -> None:
    """`users list` shows every user, oldest first, with their active tokens; `signin-link` prints a link
    with a new working token, for the first user by default or for the email given; an unknown email is
    one line and exit 65."""
    ran = await bookmarks("users", "list", DATABASE_URL=database_url)
    assert ran.code == 0, ran
    lines = ran.out.splitlines()
    assert [line.split()[0] for line in lines] == ["alice@example.com", "bob@example.com"]
    assert all(line.endswith("1 active token") for line in lines), lines

    for email, expected in ((None, "alice@example.com"), ("bob@example.com", "bob@example.com")):
        ran = await bookmarks(
            "signin-link", *([email] if email else []), "--server", "http://dash.example:9000/",
            DATABASE_URL=database_url,
        )  # fmt: skip
        assert ran.code == 0, ran
        assert ran.err.startswith(f"Sign-in link for {expected} (a new token, shown only once)")
        link = ran.out.strip()
        assert link.startswith("http://dash.example:9000/#token=sytb_"), link
        token = link.split("#token=", 1)[1]
        me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["email"] == expected

    ran = await bookmarks("users", "list", DATABASE_URL=database_url)
    assert ran.out.splitlines()[0].endswith("2 active tokens")

    ran = await bookmarks("signin-link", "nobody@example.com", DATABASE_URL=database_url)
    assert (ran.code, ran.err.splitlines()) == (
        ExitCode.DATA,
        ["bookmarks: no user with email nobody@example.com"],
    )
