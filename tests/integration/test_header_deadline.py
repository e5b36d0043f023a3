"""uvicorn with our protocol (app/serving.py) times out requests whose headers never finish; complete
requests, keep-alive and WebSocket upgrades are untouched. In-process uvicorn on a real socket, with the
deadline shortened for the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from litestar import Litestar, get, websocket
from litestar.connection import WebSocket

from app import serving
from testkit.harness import free_port

DEADLINE_S = 0.5
WAIT_S = 10.0


@get("/hello", sync_to_thread=False)
def hello() -> str:
    return "hi"


@websocket("/ws")
async def echo(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_text(await socket.receive_text())
    await socket.close()


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(serving, "HEADER_TIMEOUT_S", DEADLINE_S)
    chosen = free_port()
    config = uvicorn.Config(
        Litestar([hello, echo]),
        host="127.0.0.1",
        port=chosen,
        http=serving.HeaderDeadlineProtocol,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:
            await asyncio.sleep(0.01)
    yield chosen
    server.should_exit = True
    await asyncio.wait_for(task, WAIT_S)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(WAIT_S):
        return await reader.read()


async def test_half_sent_headers_get_408_and_the_connection_is_closed(port: int) -> None:
    """A request line and one header, then nothing: 408, then the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()

    answer = await read_all(reader)  # returns at EOF: the server closed

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    writer.close()


async def test_a_silent_connection_is_closed(port: int) -> None:
    """A connection that never sends a byte is closed too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    assert (await read_all(reader)).startswith(b"HTTP/1.1 408")
    writer.close()


async def test_complete_requests_and_keep_alive_are_untouched(port: int) -> None:
    """Two requests on one connection, the second sent after more than the deadline, are both answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(request)
    first = await asyncio.wait_for(reader.readuntil(b"hi"), WAIT_S)
    await asyncio.sleep(DEADLINE_S * 2)  # idle between requests: uvicorn's keep-alive (5 s) governs
    writer.write(request + request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    rest = await read_all(reader)

    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest.count(b"HTTP/1.1 200 OK") == 2
    writer.close()


async def test_a_websocket_outlives_the_deadline(port: int) -> None:
    """An upgraded connection is no longer an HTTP request: the deadline does not apply to it."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=WAIT_S) as ws:
        await asyncio.sleep(DEADLINE_S * 2)
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == "still here"
