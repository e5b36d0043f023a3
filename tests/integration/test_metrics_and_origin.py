"""Operations and browser-facing safety: /metrics behind its token, the WebSocket's Origin check."""

from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from tests.conftest import Account


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
        assert (await client.get("/metrics", headers=alice.headers)).status_code == 401
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
