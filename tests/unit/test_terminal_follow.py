"""The terminal client against a scripted server: a job that a snapshot no longer holds is asked for over
HTTP, a job ended by the catch-up leaves the connection up, and bars of dropped jobs go."""

from __future__ import annotations

import asyncio
import io
import json
from http import HTTPStatus
from typing import Any

import pytest
import websockets
from rich.console import Console
from websockets.http11 import Request, Response

from app import terminal
from app.exits import ExitCode
from app.terminal import JobBars, LiveFollower, follow_jobs, progress_display
from tests.unit.test_terminal_display import RUNNING, drawn

TOKEN = "sytb_" + "f" * 43
JOB_ID = "0191bbbb-0000-7000-8000-000000000000"
ENDED_LONG_AGO: dict[str, Any] = {
    "id": JOB_ID,
    "list_id": None,
    "kind": "import",
    "source": "links.csv",
    "status": "completed",
    "total": 3,
    "processed": 3,
    "failed": 0,
    "rate": None,
    "eta_s": None,
    "message": "All 3 videos ready",
    "last_error": None,
    "last_seq": 7,
    "started_at": "2026-01-01T10:00:00Z",
}


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(terminal, "console", Console(file=out, width=120))
    return out


async def test_a_followed_job_missing_from_the_snapshot_is_read_over_http(console: io.StringIO) -> None:
    """A snapshot without the followed job (it ended over ten minutes ago) makes the client ask
    GET /api/jobs/{id}: the import ends with that job's outcome instead of waiting forever."""
    asked: list[str] = []

    def answer_http(connection: websockets.ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/api/jobs/"):
            asked.append(request.path)
            return connection.respond(HTTPStatus.OK, json.dumps(ENDED_LONG_AGO))
        return None  # the socket

    async def snapshot_without_it(ws: websockets.ServerConnection) -> None:
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"type": "snapshot", "seq": 9, "jobs": []}))
        await ws.send(json.dumps({"type": "ready", "seq": 9}))
        await ws.wait_closed()

    async with websockets.serve(snapshot_without_it, "127.0.0.1", 0, process_request=answer_http) as server:
        port = server.sockets[0].getsockname()[1]
        code = await asyncio.wait_for(follow_jobs(f"http://127.0.0.1:{port}", TOKEN, [JOB_ID], {}), 15)

    assert code == ExitCode.OK
    assert asked == [f"/api/jobs/{JOB_ID}"]
    assert "completed: All 3 videos ready" in console.getvalue()


async def test_a_job_ended_by_the_catch_up_leaves_the_connection_up() -> None:
    """After a reconnect whose snapshot already shows the job ended (before `ready` comes), the follower
    says the connection is up: the last screen does not keep saying "reconnecting…"."""
    sessions = 0

    async def restart_then_snapshot(ws: websockets.ServerConnection) -> None:
        nonlocal sessions
        sessions += 1
        await asyncio.wait_for(ws.recv(), 5)
        if sessions == 1:
            await ws.close(1012, "restarting")
            return
        ended = RUNNING | {"status": "completed", "processed": 1000}
        await ws.send(json.dumps({"type": "snapshot", "seq": 3, "jobs": [ended]}))
        await ws.wait_closed()

    async with websockets.serve(restart_then_snapshot, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        follower = LiveFollower(
            f"ws://127.0.0.1:{port}/api/ws/progress",
            TOKEN,
            on_change=lambda _: None,
            done=lambda states: all(state["status"] == "completed" for state in states.values()),
        )
        await asyncio.wait_for(follower.run(), 15)

    assert follower.reconnects == 1
    assert follower.connection.up


def test_a_bar_goes_when_a_snapshot_drops_its_job(console: io.StringIO) -> None:
    """`watch` after a long outage: the jobs the new snapshot no longer holds lose their bars."""
    bars = JobBars(progress_display(), "http://127.0.0.1:8000")
    other = RUNNING | {"job_id": "0191cccc-0000-7000-8000-000000000000", "source": "other.csv"}
    bars.show({RUNNING["job_id"]: RUNNING | {"source": "gone.csv"}, other["job_id"]: other})
    assert "gone.csv" in drawn(bars.progress)

    bars.show({other["job_id"]: other})

    assert "gone.csv" not in drawn(bars.progress)
    assert "other.csv" in drawn(bars.progress)
