"""live.js against a scripted socket, in Chromium with Playwright's fake clock: the protocol rules of
docs/design.md ("The progress socket") that a real server rarely exercises (duplicates, gaps, close codes, backoff)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Page
from uuid_utils.compat import uuid7

from app.api.schemas import JobOut
from db.events import ProgressEvent
from db.models import Job
from tests.browser.harness import AppServer

pytestmark = pytest.mark.browser

TOKEN = "sytb_test-token"
START = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

# A WebSocket stand-in the test drives: open(), receive(frame), drop(code); it records what the client
# sends and how it closes. Installed before live.js creates any socket.
INSTALL = """
async (token) => {
  class FakeSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor(url) {
      this.url = url;
      this.readyState = FakeSocket.CONNECTING;
      this.sent = [];
      this.closedWith = null;
      this.listeners = {};
      window.t.sockets.push(this);
    }
    addEventListener(type, listener) {
      (this.listeners[type] ??= []).push(listener);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = FakeSocket.CLOSED;
    }
    open() {
      this.readyState = FakeSocket.OPEN;
      this.emit("open", {});
    }
    receive(frame) {
      this.emit("message", { data: JSON.stringify(frame) });
    }
    drop(code, reason = "") {
      this.readyState = FakeSocket.CLOSED;
      this.emit("close", { code, reason });
    }
    emit(type, event) {
      for (const listener of this.listeners[type] ?? []) listener(event);
    }
  }
  window.WebSocket = FakeSocket;
  window.t = { sockets: [], statuses: [], changes: [], unauthorized: 0 };
  const { LiveClient } = await import("/static/live.js");
  window.t.client = new LiveClient({
    token,
    url: "ws://example.test/api/ws/progress",
    onChange: (listIds) => window.t.changes.push([...listIds]),
    onStatus: (status) => window.t.statuses.push(status),
    onUnauthorized: () => (window.t.unauthorized += 1),
  });
  window.t.client.start();
}
"""


def job(
    job_id: str, seq: int, *, status: str = "running", processed: int = 0, total: int = 10
) -> dict[str, Any]:
    return {
        "seq": seq,
        "job_id": job_id,
        "list_id": "list-1",
        "status": status,
        "progress": round(100 * processed / total, 1),
        "processed": processed,
        "failed": 0,
        "total": total,
        "rate": None,
        "eta_s": None,
        "message": None,
        "error": None,
        "at": "2026-11-29T10:00:00.000Z",
    }


def event(job_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"type": "event", **job(job_id, seq, **fields)}


class Client:
    """Drives the page's LiveClient and its fake sockets from the test."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def sockets(self) -> int:
        count: int = self.page.evaluate("() => window.t.sockets.length")
        return count

    def socket(self, index: int = -1) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate(
            "(i) => { const s = window.t.sockets.at(i); return { sent: s.sent, closedWith: s.closedWith }; }",
            index,
        )
        return state

    def open(self) -> None:
        self.page.evaluate("() => window.t.sockets.at(-1).open()")

    def receive(self, *frames: dict[str, Any]) -> None:
        for frame in frames:
            self.page.evaluate("(f) => window.t.sockets.at(-1).receive(f)", frame)

    def drop(self, code: int, reason: str = "") -> None:
        self.page.evaluate("([c, r]) => window.t.sockets.at(-1).drop(c, r)", [code, reason])

    def connect(self, after: int | None, *frames: dict[str, Any]) -> None:
        """Opens the newest socket, checks its hello, and plays the server's answer."""
        self.open()
        assert self.socket()["sent"][0] == {"type": "hello", "token": TOKEN, "after": after}
        self.receive(*frames)

    def jobs(self) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = self.page.evaluate(
            "() => Object.fromEntries([...window.t.client.jobs].map(([id, j]) => [id, j]))"
        )
        return jobs

    @property
    def statuses(self) -> list[str]:
        statuses: list[str] = self.page.evaluate("() => window.t.statuses")
        return statuses

    def advance(self, ms: int) -> None:
        self.page.clock.run_for(ms)


@pytest.fixture
def client(page: Page, static_server: AppServer) -> Client:
    page.clock.install(time=START)
    page.goto(static_server.url + "/")  # any page of the origin: live.js is imported from /static/
    page.clock.pause_at(START + timedelta(hours=1))  # from here on, time moves only when the test says
    page.evaluate("() => { Math.random = () => 0.999999; }")  # jitter at its top: delays are the ceiling
    page.evaluate(INSTALL, TOKEN)
    return Client(page)


def test_a_snapshot_replaces_the_jobs_and_repeated_or_older_events_are_ignored(client: Client) -> None:
    """Snapshot S sets the state and the cursor; events at or below the cursor change nothing."""
    client.connect(
        None,
        {"type": "snapshot", "seq": 10, "jobs": [job("a", 9)]},
        {"type": "ready", "seq": 10, "resumed": False},
    )
    assert client.statuses == ["connecting", "online"]

    client.receive(event("a", 11, processed=5), event("a", 11, processed=9), event("a", 7, processed=1))
    assert client.jobs()["a"]["processed"] == 5

    client.receive({"type": "snapshot", "seq": 20, "jobs": [job("b", 18)]})
    assert list(client.jobs()) == ["b"]
    client.receive(event("b", 20, processed=3))
    assert client.jobs()["b"]["processed"] == 0


def test_a_reconnect_resumes_after_the_last_seq(client: Client) -> None:
    """A dropped socket shows "reconnecting", and the next hello asks for what came after the last seq."""
    client.connect(
        None, {"type": "snapshot", "seq": 3, "jobs": []}, {"type": "ready", "seq": 3, "resumed": False}
    )
    client.receive(event("a", 4, processed=1), event("a", 5, processed=2))

    client.drop(1006)
    assert client.statuses[-1] == "reconnecting"
    client.advance(500)
    assert client.sockets == 2

    client.connect(5, event("a", 6, processed=3), {"type": "ready", "seq": 6, "resumed": True})
    assert client.statuses[-1] == "online"
    assert client.jobs()["a"]["processed"] == 3


def test_a_gap_in_seq_reconnects_from_the_last_contiguous_seq(client: Client) -> None:
    """Seq 12 after 10 means 11 went missing: the event is not applied and the client resumes after 10."""
    client.connect(
        None,
        {"type": "snapshot", "seq": 10, "jobs": [job("a", 10)]},
        {"type": "ready", "seq": 10, "resumed": False},
    )

    client.receive(event("a", 12, processed=8))

    assert client.jobs()["a"]["processed"] == 0
    assert client.socket()["closedWith"]["code"] == 4000
    client.advance(500)
    assert client.sockets == 2
    client.connect(10)


def test_backoff_doubles_from_half_a_second_to_thirty_and_resets_after_ready(client: Client) -> None:
    """Failed attempts wait 0.5, 1, 2 ... 30 s (at most); a connection that got `ready` starts over."""
    for ceiling_ms in [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]:
        before = client.sockets
        client.drop(1006)
        client.advance(ceiling_ms - 5)
        assert client.sockets == before, f"reconnected before {ceiling_ms} ms"
        client.advance(5)
        assert client.sockets == before + 1, f"not reconnected after {ceiling_ms} ms"

    client.connect(
        None, {"type": "snapshot", "seq": 0, "jobs": []}, {"type": "ready", "seq": 0, "resumed": False}
    )
    client.drop(1006)
    client.advance(500)
    assert client.sockets == 10


def test_close_codes_choose_what_happens_next(client: Client, page: Page) -> None:
    """1012 reconnects within a second, 4429 waits at least 30 s, 4430 waits as long as its reason says and
    keeps the token (like 1008, 1011 and 1013), and only 4401 signs out and stops."""
    client.drop(1012)
    client.advance(1000)
    assert client.sockets == 2

    client.drop(4429)
    client.advance(29_000)
    assert client.sockets == 2
    client.advance(1000)
    assert client.sockets == 3

    client.drop(4430, "rate limited; retry in 12 s")
    client.advance(11_000)
    assert client.sockets == 3
    client.advance(1000)
    assert client.sockets == 4

    for count, code in enumerate((1008, 1011, 1013, 4000), start=5):
        client.drop(code)
        client.advance(30_000)
        assert client.sockets == count
    assert page.evaluate("() => window.t.unauthorized") == 0

    client.drop(4401)
    client.advance(120_000)
    assert client.sockets == 8
    assert page.evaluate("() => window.t.unauthorized") == 1


def test_a_silent_socket_is_replaced_and_pong_keeps_it(client: Client) -> None:
    """After `ready` the client pings every 25 s; a pong keeps the socket, silence replaces it."""
    client.connect(
        None, {"type": "snapshot", "seq": 0, "jobs": []}, {"type": "ready", "seq": 0, "resumed": False}
    )

    client.advance(25_000)
    assert client.socket()["sent"][-1] == {"type": "ping"}
    client.receive({"type": "pong"})
    client.advance(10_000)
    assert client.socket()["closedWith"] is None

    client.advance(15_000)  # the next ping, then no answer
    client.advance(10_000)
    assert client.socket()["closedWith"]["code"] == 4000
    client.advance(1_000)
    assert client.sockets == 2


def test_leaving_the_page_closes_with_1000_and_coming_back_resumes(client: Client, page: Page) -> None:
    """pagehide closes the socket cleanly and schedules nothing; a page restored from the bfcache
    reconnects with its last seq."""
    client.connect(
        None, {"type": "snapshot", "seq": 7, "jobs": []}, {"type": "ready", "seq": 7, "resumed": False}
    )

    page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))")

    assert client.socket()["closedWith"] == {"code": 1000, "reason": "page hidden"}
    client.advance(60_000)
    assert client.sockets == 1

    page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    assert client.sockets == 2
    client.connect(7)


def test_finished_jobs_are_forgotten_ten_minutes_after_they_finish(client: Client, page: Page) -> None:
    """Active jobs stay; a finished one stays 10 minutes from when it finished (per the snapshot's `at`
    after a reload, per arrival for a live event)."""
    now = START + timedelta(hours=1)
    nine_minutes_ago = (now - timedelta(minutes=9)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    old = {**job("old", 3, status="completed", processed=10), "at": nine_minutes_ago}
    client.connect(
        None,
        {"type": "snapshot", "seq": 5, "jobs": [old, job("active", 5)]},
        {"type": "ready", "seq": 5, "resumed": False},
    )
    client.receive(event("live", 6, status="cancelled", processed=2))

    def visible() -> list[str]:
        ids: list[str] = page.evaluate("() => window.t.client.visibleJobs().map((j) => j.job_id)")
        return ids

    assert visible() == ["old", "active", "live"]
    client.advance(61_000)
    assert visible() == ["active", "live"]
    client.advance(9 * 60_000)
    assert visible() == ["active"]


def test_a_job_from_the_api_becomes_exactly_the_event_shape(page: Page, static_server: AppServer) -> None:
    """jobStateFromApi turns an API job (JobOut) into a state with exactly the ProgressEvent fields, so
    jobs learnt over HTTP and over the socket can share one map."""
    row = Job(
        id=uuid7(), user_id=uuid7(), list_id=uuid7(), kind="import", status="running", total=10,
        processed=4, failed=1, message="Fetched 4 of 10 videos", last_error="x: gone", rate=2.0, eta_s=3,
        last_seq=12, cancel_requested=False, created_at=START, started_at=START, finished_at=None,
    )  # fmt: skip
    api_job = msgspec.to_builtins(JobOut.of(row))
    page.goto(static_server.url + "/")

    state: dict[str, Any] = page.evaluate(
        "async (job) => (await import('/static/live.js')).jobStateFromApi(job)", api_job
    )

    assert set(state) == set(ProgressEvent.__struct_fields__)
    assert (state["seq"], state["job_id"], state["error"]) == (12, str(row.id), "x: gone")
