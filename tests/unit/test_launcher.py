"""What `bookmarks` says about a database it cannot reach, and the address it prints for the dashboard."""

from __future__ import annotations

import pytest

from app.exits import CommandError, ExitCode
from app.launcher import dashboard_url, database_problem, uvicorn_exits
from app.settings import Settings


def test_a_connect_timeout_says_there_was_no_answer() -> None:
    """A TimeoutError has no strerror: the line still ends with a reason, not with ": "."""
    problem = database_problem(TimeoutError(), Settings(database_url="postgresql://db.example:5432/x"))
    assert problem is not None
    assert str(problem) == "cannot reach the database at db.example:5432/x: no answer (timed out)"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("fe80::1%eth0", "http://[fe80::1%25eth0]:8000"),
        ("bookmarks.example", "http://bookmarks.example:8000"),
    ],
)
def test_the_dashboard_address_brackets_an_ipv6_literal(host: str, url: str) -> None:
    """`run --host ::1` prints a link a browser can open: an IPv6 address in brackets, names as they are."""
    assert dashboard_url(host, 8000) == url


@pytest.mark.parametrize("code", [1, 3])
def test_uvicorn_failing_to_start_is_a_documented_exit_code(code: int) -> None:
    """uvicorn's exit 1 (cannot bind) and 3 (the app did not start, our "completed with errors") become
    one line and 69; other exits (a signal's) pass through."""
    with pytest.raises(CommandError) as raised, uvicorn_exits():
        raise SystemExit(code)
    assert raised.value.exit_code == ExitCode.UNAVAILABLE
    with pytest.raises(SystemExit), uvicorn_exits():
        raise SystemExit(143)
