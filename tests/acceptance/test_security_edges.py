"""The app as uvicorn serves it (app/serving.py), from outside: whose X-Forwarded-For counts, and that no
token reaches any log line, access log included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from testkit.accounts import Account
from testkit.harness import READ_TIMEOUT_S, ServerProcess, app_env

WRONG_TOKEN = "sytb_" + "w" * 43


async def bad_token_codes(server: ServerProcess, forwarded_for: list[str]) -> list[int]:
    """One bad token per address in `forwarded_for`, each claimed with X-Forwarded-For."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        return [
            (
                await client.get(
                    "/api/me",
                    headers={"Authorization": f"Bearer {WRONG_TOKEN}", "X-Forwarded-For": address},
                )
            ).status_code
            for address in forwarded_for
        ]


async def test_x_forwarded_for_from_an_untrusted_address_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """By default nobody's X-Forwarded-For is believed: bad tokens that each claim another address are all
    counted against the real one (429 past the limit). With TRUSTED_PROXIES naming the sender, the same
    header is believed and each claimed address has its own count."""
    addresses = [f"203.0.113.{n}" for n in range(1, 6)]
    untrusted = ServerProcess(
        env=app_env(database_url, AUTH_FAILURES_PER_MINUTE="2"), log_path=tmp_path / "untrusted.log"
    )
    trusted = ServerProcess(
        env=app_env(database_url, AUTH_FAILURES_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.1"),
        log_path=tmp_path / "trusted.log",
    )
    try:
        await asyncio.gather(untrusted.start(), trusted.start())
        assert await bad_token_codes(untrusted, addresses) == [401, 401, 429, 429, 429]
        assert await bad_token_codes(trusted, addresses) == [401] * 5
    finally:
        await asyncio.gather(untrusted.stop(), trusted.stop())


async def test_no_token_reaches_any_log_line(database_url: str, tmp_path: Path, alice: Account) -> None:
    """Tokens sent in headers, hellos, query strings and cookies, valid and not, over HTTP and WebSocket:
    the server's whole log (access lines at INFO included) holds none of them."""
    log_path = tmp_path / "server.log"
    server = ServerProcess(env=app_env(database_url), log_path=log_path, log_level="info")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            for token in (alice.token, WRONG_TOKEN):
                await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
                await client.get(f"/api/me?token={token}")
                await client.get(
                    f"/api/lists?access_token={token}", headers={"Authorization": f"Bearer {token}"}
                )
                await client.get("/api/me", headers={"Cookie": f"token={token}; session={token}"})
                await client.get(f"/static/app.js?token={token}")
            await client.get("/api/me", headers={"Authorization": f"Basic {alice.token}"})
        for token in (alice.token, WRONG_TOKEN):
            async with websockets.connect(
                f"{server.ws_url}?token={token}",
                open_timeout=READ_TIMEOUT_S,
                additional_headers={"Cookie": f"token={token}"},
            ) as ws:
                await ws.send(json.dumps({"type": "hello", "token": token, "after": None}))
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
                        if token == alice.token:
                            break
                except websockets.ConnectionClosed:
                    pass
    finally:
        await server.stop()

    text = log_path.read_text()
    assert '"GET /api/me?[query removed] HTTP/1.1" 401' in text, (
        "the access log must be on for this to mean much"
    )
    assert "/api/ws/progress?[query removed]" in text
    assert "progress socket ended" in text
    assert alice.token not in text
    assert WRONG_TOKEN not in text
    assert alice.token.removeprefix("sytb_")[:16] not in text
