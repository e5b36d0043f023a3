"""Operations and browser-facing safety: /metrics behind its token, the WebSocket's Origin check."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account


async def test_metrics_are_off_without_a_token(settings: Settings) -> None:
    """With METRICS_TOKEN unset, /metrics does not exist."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_metrics_need_their_token_and_report_jobs_and_the_hub(
    settings: Settings, alice: Account
) -> None:
    """/metrics answers 401 without the token and Prometheus text with it: hub state, jobs by status."""
    app = create_app(dataclasses.replace(settings, metrics_token="scrape-me"))
    async with AsyncTestClient(app=app) as client:
        created = await client.post("/api/lists", json={"name": "M"}, headers=alice.headers)
        await client.post(
            f"/api/lists/{created.json()['id']}/imports",
            content="dQw4w9WgXcQ",
            headers={**alice.headers, "Content-Type": "text/plain"},
        )
        refused = await client.get("/metrics", headers=alice.headers)
        assert (refused.status_code, refused.headers["content-type"]) == (401, "application/json")
        response = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert response.status_code == 200
    body = response.text
    assert "bookmarks_hub_connected 1.0" in body
    assert 'bookmarks_jobs{status="queued"} 1.0' in body
    assert 'bookmarks_videos{status="pending"} 1.0' in body
    assert "bookmarks_pg_notification_queue_usage " in body
    assert "# TYPE bookmarks_hub_reconnects_total counter" in body


@pytest.mark.parametrize(
    ("origin", "allowed", "expected_first"),
    [
        (None, (), "snapshot"),
        ("http://testserver.local", (), "snapshot"),
        ("https://evil.example", (), "closed 4403"),
        ("https://dash.example", ("https://dash.example",), "snapshot"),
    ],
)
async def test_the_socket_checks_the_origin(
    settings: Settings, alice: Account, origin: str | None, allowed: tuple[str, ...], expected_first: str
) -> None:
    """Pages from other origins cannot open the progress socket unless ALLOWED_ORIGINS names them."""
    from litestar.exceptions import WebSocketDisconnect

    app = create_app(dataclasses.replace(settings, allowed_origins=allowed))
    headers = {} if origin is None else {"origin": origin}
    async with AsyncTestClient(app=app) as client:
        with await client.websocket_connect("/api/ws/progress", headers=headers) as ws:
            try:
                ws.send_json({"type": "hello", "token": alice.token, "after": None})
                first = ws.receive_json(timeout=10)["type"]
            except WebSocketDisconnect as closed:
                first = f"closed {closed.code}"
    assert first == expected_first


async def test_bad_tokens_are_slowed_down_but_a_valid_token_never_is(
    settings: Settings, alice: Account
) -> None:
    """Past AUTH_FAILURES_PER_MINUTE bad tokens from one address, bad tokens get 429 with Retry-After, while a
    valid token from the same address (a shared NAT or proxy) still gets in: only failures count."""
    app = create_app(dataclasses.replace(settings, auth_failures_per_minute=3))
    async with AsyncTestClient(app=app) as client:
        bad = {"Authorization": "Bearer sytb_wrong"}
        codes = [(await client.get("/api/me", headers=bad)).status_code for _ in range(4)]
        valid = [(await client.get("/api/me", headers=alice.headers)).status_code for _ in range(5)]
        refused = await client.get("/api/me", headers=bad)
    assert codes == [401, 401, 401, 429]
    assert valid == [200] * 5
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["detail"] == "too many failed sign-in attempts from your address; try again later"


async def test_imports_per_user_are_rate_limited(settings: Settings, alice: Account, bob: Account) -> None:
    """Past IMPORTS_PER_MINUTE a user's imports get 429 and write nothing; other users are unaffected."""
    app = create_app(dataclasses.replace(settings, imports_per_minute=2))
    async with AsyncTestClient(app=app) as client:

        async def import_one(account: Account, video_id: str) -> int:
            created = await client.post("/api/lists", json={"name": "L"}, headers=account.headers)
            response = await client.post(
                f"/api/lists/{created.json()['id']}/imports",
                content=video_id,
                headers={**account.headers, "Content-Type": "text/plain"},
            )
            return response.status_code

        alice_codes = [await import_one(alice, f"aaaaaaaaaa{i}") for i in range(3)]
        bob_code = await import_one(bob, "bbbbbbbbbbb")
        jobs = await client.get("/api/jobs", headers=alice.headers)
    assert alice_codes == [202, 202, 429]
    assert bob_code == 202
    assert jobs.json()["total"] == 2


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_tokens_never_reach_the_logs(settings: Settings, alice: Account) -> None:
    """Through sign-ins, a bad token, an import and a socket session, no token appears in any log line."""
    from litestar.exceptions import WebSocketDisconnect

    wrong = "sytb_" + "x" * 43
    collect = Collect()
    async with AsyncTestClient(app=create_app(settings)) as client:
        # After startup: the app's logging config replaces the root handlers (pytest's caplog among them).
        root = logging.getLogger()
        root.addHandler(collect)
        root.setLevel(logging.DEBUG)
        await client.get("/api/me", headers={"Authorization": f"Bearer {wrong}"})
        created = await client.post("/api/lists", json={"name": "Logs"}, headers=alice.headers)
        await client.post(
            f"/api/lists/{created.json()['id']}/imports",
            content="dQw4w9WgXcQ\nnot-a-link",
            headers={**alice.headers, "Content-Type": "text/plain"},
        )
        for token in (alice.token, wrong):
            with await client.websocket_connect("/api/ws/progress") as ws:
                ws.send_json({"type": "hello", "token": token, "after": None})
                with contextlib.suppress(WebSocketDisconnect):  # the wrong token is closed with 4401
                    ws.receive_json(timeout=10)
    logging.getLogger().removeHandler(collect)
    text = "\n".join(collect.lines)
    assert "progress socket ended" in text, "the socket's log line must exist for this test to mean much"
    assert "rejected an unknown, revoked or expired token" in text
    assert alice.token not in text
    assert wrong not in text
