"""What `bookmarks import` and `watch` draw while the socket is down: bars marked reconnecting, no ETA,
and a line counting down to the next try."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from rich.console import Console, Group

from app import terminal
from app.terminal import Connection, JobBars, JobProgress, progress_display, retry_delay

JOB_ID = "0191aaaa-0000-7000-8000-000000000000"
RUNNING: dict[str, Any] = {
    "job_id": JOB_ID,
    "status": "running",
    "total": 1000,
    "processed": 450,
    "failed": 3,
    "rate": 38.5,
    "eta_s": 14,
}


def drawn(progress: JobProgress) -> str:
    """The progress display as a terminal would show it now, as plain text."""
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(Group(*progress.get_renderables()))
    return out.getvalue()


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> JobBars:
    monkeypatch.setattr(terminal, "console", Console(file=io.StringIO(), width=120))
    return JobBars(progress_display(), "http://127.0.0.1:8000")


def test_connected_bars_show_rate_eta_and_status(bars: JobBars) -> None:
    """Online, a running job's bar has its counts, rate, ETA and status, and no connection line."""
    bars.show({JOB_ID: RUNNING})
    text = drawn(bars.progress)
    assert "450/1000" in text
    assert "38.5/s ETA 14s" in text
    assert "running" in text
    assert "reconnecting" not in text


def test_while_the_socket_is_down_bars_say_reconnecting_and_a_line_counts_down(bars: JobBars) -> None:
    """Down: each running bar keeps its counts (as of then) but says "reconnecting…" with no rate or ETA,
    and a line above says why and in how many seconds the next try comes."""
    bars.show({JOB_ID: RUNNING})
    bars.connection_changed(
        Connection(
            up=False,
            ever_up=True,
            problem="the server is restarting",
            down_since=time.monotonic(),
            retry_at=time.monotonic() + 2.5,
        )
    )
    text = drawn(bars.progress)
    assert "reconnecting… the server is restarting; next try in 3 s (Ctrl-C to stop)" in text
    bar = next(line for line in text.splitlines() if "450/1000" in line)
    assert bar.rstrip().endswith("3 failed   reconnecting…"), bar
    assert "ETA" not in text
    assert "38.5/s" not in text

    bars.connection_changed(Connection(up=True, ever_up=True, down_since=time.monotonic() - 4.0))
    text = drawn(bars.progress)
    assert "ETA 14s" in text
    assert "reconnecting" not in text
    printed = terminal.console.file.getvalue()  # type: ignore[attr-defined]
    assert "Lost the connection (the server is restarting); reconnecting…" in printed
    assert "Reconnected after 4.0 s." in printed


def test_a_server_that_refuses_is_asked_again_within_two_seconds() -> None:
    """Refused connections (a restarting server) are retried within 2 s however long it lasts; other
    failures back off to 30 s; both with jitter."""
    refused = [retry_delay(attempt, unreachable=True) for attempt in range(12)]
    other = [retry_delay(attempt, unreachable=False) for attempt in range(12)]
    assert all(0.25 <= delay <= terminal.UNREACHABLE_RETRY_MAX_S for delay in refused)
    assert 15 <= other[-1] <= terminal.BACKOFF_MAX_S
    assert other[0] <= terminal.BACKOFF_INITIAL_S


def test_the_backoff_stays_at_its_cap_however_many_attempts() -> None:
    """A server refusing for half an hour (thousands of attempts) still gets a delay, not an OverflowError."""
    assert 0.25 <= retry_delay(5000, unreachable=True) <= terminal.UNREACHABLE_RETRY_MAX_S
    assert 15 <= retry_delay(5000, unreachable=False) <= terminal.BACKOFF_MAX_S
