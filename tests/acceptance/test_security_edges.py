"""The app as uvicorn serves it (app/serving.py), from outside: whose X-Forwarded-For counts, that no token
reaches any log line (access log included), and the hostile inputs that once answered 500 or 1011 (each now
a clean refusal, and no ERROR in the server's log)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.serving import WS_MAX_SIZE
from app.settings import Settings
from testkit.accounts import Account, create_account
from testkit.harness import READ_TIMEOUT_S, ServerProcess, app_env
from tests.conftest import scratch_database

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
    the server's whole log, at LOG_LEVEL=DEBUG (access and WebSocket handshake lines included), holds none
    of them."""
    log_path = tmp_path / "server.log"
    server = ServerProcess(env=app_env(database_url, LOG_LEVEL="DEBUG"), log_path=log_path, log_level="debug")
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
    assert "< cookie: [removed]" in text, "websockets' DEBUG header dump, its credentials cut"
    assert "< TEXT [removed] [" in text, "websockets' DEBUG frame dump, the hello's contents cut"
    assert "progress socket ended" in text
    assert alice.token not in text
    assert WRONG_TOKEN not in text
    assert alice.token.removeprefix("sytb_")[:16] not in text


class LoggedServer:
    """A server whose log the test reads back: what one step added to it."""

    def __init__(self, server: ServerProcess, log_path: Path) -> None:
        self.server = server
        self.log_path = log_path
        self._offset = 0

    def new_log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        added, self._offset = text[self._offset :], len(text)
        return added


@pytest.fixture(scope="module")
async def edge_server(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LoggedServer]:
    async with scratch_database("bm_edges", template_database) as url:
        log_path = tmp_path_factory.mktemp("edges") / "server.log"
        server = ServerProcess(env=app_env(url), log_path=log_path, log_level="info")
        await server.start()
        try:
            yield LoggedServer(server, log_path)
        finally:
            await server.stop()


@pytest.fixture
async def edge_account(edge_server: LoggedServer) -> Account:
    engine = create_async_engine(Settings.from_env(edge_server.server.env).sqlalchemy_url)
    try:
        return await create_account(
            async_sessionmaker(engine, expire_on_commit=False), f"{uuid.uuid4()}@example.com"
        )
    finally:
        await engine.dispose()


def assert_no_error_logged(log: str) -> None:
    assert "ERROR" not in log and "Traceback" not in log, log


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deep_json_bodies_answer_400(
    edge_server: LoggedServer, edge_account: Account, depth: int
) -> None:
    """JSON nested 1,000 or 100,000 levels deep, in a POST and in a PATCH body: 400 saying so, no ERROR."""
    headers = {**edge_account.headers, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=edge_server.server.base_url, timeout=READ_TIMEOUT_S) as client:
        created = await client.post("/api/lists", json={"name": "Deep"}, headers=edge_account.headers)
        posted = await client.post("/api/lists", content=f'{{"name": {nested(depth)}}}', headers=headers)
        patched = await client.patch(
            f"/api/lists/{created.json()['id']}", content=nested(depth), headers=headers
        )

    for response in (posted, patched):
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "the JSON body is nested too deeply"
    assert_no_error_logged(edge_server.new_log())


async def hello_answer(server: ServerProcess, hello: str) -> list[str] | int | None:
    """The frame types the server sends until `ready`, or the close code when it closes first."""
    async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S, max_size=None) as ws:
        await ws.send(hello)
        kinds: list[str] = []
        try:
            while not kinds or kinds[-1] != "ready":
                kinds.append(json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))["type"])
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        return kinds


async def test_a_deeply_nested_hello_closes_1008(edge_server: LoggedServer) -> None:
    """A hello nested 30,000 levels deep (no token needed to send it) closes 1008, not 1011."""
    for hello in (nested(30_000), '{"type": "hello", "token": ' + nested(5_000) + "}"):
        assert await hello_answer(edge_server.server, hello) == 1008
    assert_no_error_logged(edge_server.new_log())


async def test_an_oversized_hello_closes_1009_and_the_server_carries_on(
    edge_server: LoggedServer, edge_account: Account
) -> None:
    """A first message over WS_MAX_SIZE (anyone may send one, before any token is checked) closes 1009
    without an ERROR; the next socket is served as usual."""
    oversized = "[" + ",".join(["{}"] * (WS_MAX_SIZE // 3 + 1)) + "]"
    assert len(oversized) > WS_MAX_SIZE
    assert await hello_answer(edge_server.server, oversized) == 1009
    hello = json.dumps({"type": "hello", "token": edge_account.token, "after": None})
    assert await hello_answer(edge_server.server, hello) == ["snapshot", "ready"]
    assert_no_error_logged(edge_server.new_log())


@pytest.mark.parametrize("after", [2**31, 2**63 - 1, 2**63, 2**64, 10**30])
async def test_an_after_beyond_the_head_gets_a_snapshot(
    edge_server: LoggedServer, edge_account: Account, after: int
) -> None:
    """`after` past int4, at and past the largest bigint, past uint64: a snapshot, then ready."""
    hello = f'{{"type": "hello", "token": "{edge_account.token}", "after": {after}}}'
    assert await hello_answer(edge_server.server, hello) == ["snapshot", "ready"]
    assert_no_error_logged(edge_server.new_log())


@pytest.mark.parametrize(
    "path", ["/static/app.js%00.png", "/static/%00", "/api/lists/%00", "/saq/static/app.js%00"]
)
async def test_a_nul_in_a_path_answers_404(edge_server: LoggedServer, path: str) -> None:
    """A NUL byte in a path names nothing: 404 (was a 500 from os.stat for static files), no ERROR."""
    async with httpx.AsyncClient(base_url=edge_server.server.base_url, timeout=READ_TIMEOUT_S) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert_no_error_logged(edge_server.new_log())


async def test_a_form_of_ten_thousand_parts_is_refused_saying_why(
    edge_server: LoggedServer, edge_account: Account
) -> None:
    """An import form of 10,000 parts: 413 with a detail that counts the parts and says what to send."""
    boundary = "edgeboundary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    body = (part * 10_000 + f"--{boundary}--\r\n").encode()
    headers = {**edge_account.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with httpx.AsyncClient(base_url=edge_server.server.base_url, timeout=READ_TIMEOUT_S) as client:
        created = await client.post("/api/lists", json={"name": "Parts"}, headers=edge_account.headers)
        response = await client.post(
            f"/api/lists/{created.json()['id']}/imports", content=body, headers=headers
        )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the form has 10,000 parts, more than the 100 an import may have: send one file (or one text field)"
    )
    assert_no_error_logged(edge_server.new_log())
