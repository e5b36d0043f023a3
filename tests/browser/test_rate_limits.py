"""Limits never sign anyone out: the dashboard on an address that is over its failed sign-in limit, in a real
Chromium against a real server (README, "WebSocket protocol": close codes)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.dashboard import Dashboard
from tests.browser.harness import Account, AppServer

pytestmark = pytest.mark.browser

WRONG_TOKEN = "sytb_" + "x" * 43


@pytest.fixture
def server_settings() -> dict[str, str]:
    return {"AUTH_FAILURES_PER_MINUTE": "1"}  # the second bad token from an address is refused with 429


class SocketRelay:
    """Routes the page's progress socket through the test to the real server. While `spoil_hello` is set,
    the hello carries a wrong token, so the server answers as it does to a client that keeps failing."""

    def __init__(self) -> None:
        self.spoil_hello = False
        self.server_closes: list[tuple[int | None, str]] = []
        self.current: tuple[WebSocketRoute, WebSocketRoute] | None = None
        self.dropped: set[int] = set()

    def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self.current = (page_side, server_side)

        def from_page(message: str | bytes) -> None:
            if self.spoil_hello and isinstance(message, str) and json.loads(message).get("type") == "hello":
                message = json.dumps({**json.loads(message), "token": WRONG_TOKEN})
            server_side.send(message)

        def from_server_close(code: int | None, reason: str | None) -> None:
            if id(server_side) in self.dropped:
                return  # our own close in drop()
            self.server_closes.append((code, reason or ""))
            page_side.close(code=code, reason=reason or "")

        page_side.on_message(from_page)
        server_side.on_close(from_server_close)

    def drop(self) -> None:
        """Closes the page's socket as a restarting server would (1012), so the page reconnects."""
        assert self.current is not None
        page_side, server_side = self.current
        self.dropped.add(id(server_side))
        page_side.close(code=1012, reason="test: reconnect")
        server_side.close()


def wait_for(page: Page, predicate: object, timeout_s: float = 15.0) -> None:
    """Lets Playwright deliver the relay's events until `predicate()` holds (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def test_a_rate_limited_reconnect_keeps_the_token_and_recovers_when_the_limit_lifts(
    page: Page, server: AppServer, account: Account
) -> None:
    """On an address over its failed sign-in limit (a shared NAT), the signed-in user's own requests still
    pass; a socket refused for the limit closes 4430, the dashboard keeps its token and shows
    "Reconnecting…", and it is back on its own once the refusals stop."""
    relay = SocketRelay()
    page.route_web_socket(re.compile(r"/api/ws/progress$"), relay.route)
    page.clock.install()
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    expect(board.connection_banner).to_be_hidden()

    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        wrong = [client.get("/api/me", headers={"Authorization": f"Bearer {WRONG_TOKEN}"}) for _ in range(2)]
        mine = client.get("/api/me", headers={"Authorization": f"Bearer {account.token}"})
    assert [response.status_code for response in wrong] == [401, 429]
    assert mine.status_code == 200, "a valid token is never refused by the failure limiter"

    relay.spoil_hello = True
    relay.drop()
    page.clock.run_for(1_000)  # 1012: the page reconnects within a second
    wait_for(page, lambda: relay.server_closes)

    assert relay.server_closes == [(4430, "rate limited; retry in 60 s")]
    expect(board.connection_banner).to_have_text("Reconnecting…")
    assert page.evaluate("() => localStorage.getItem('sytb.token')") == account.token
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    relay.spoil_hello = False
    page.clock.run_for(30_000)  # the longest the page waits, whatever Retry-After says
    expect(board.connection_banner).to_be_hidden()
    assert page.evaluate("() => localStorage.getItem('sytb.token')") == account.token
    assert relay.server_closes == [(4430, "rate limited; retry in 60 s")]
