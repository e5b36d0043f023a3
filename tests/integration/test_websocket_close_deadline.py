"""uvicorn with our WebSocket protocol (app/serving.py) does not keep a connection whose client stopped
reading once the app is done with it. In-process uvicorn on a real socket, a client that never reads, and
the grace shortened for the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app import serving
from testkit.harness import free_port
from testkit.rawsocket import RawWebSocket

GRACE_S = 0.2
STUCK_S = 0.3
"""A send or close that has not completed within this is stuck (the client reads nothing)."""
WAIT_S = 10.0


async def stalls_then_gives_up(scope: dict[str, object], receive: object, send: object) -> None:
    """What the progress session does with a client that stopped reading: frames until a send is stuck
    (the watchdog's 1013), a close that cannot be delivered either, then the handler returns."""
    assert callable(receive) and callable(send)
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await receive()  # the hello
    frame = {"type": "websocket.send", "text": "x" * 65536}
    try:
        while True:
            async with asyncio.timeout(STUCK_S):
                await send(frame)
    except TimeoutError:
        pass
    try:
        async with asyncio.timeout(STUCK_S):
            await send({"type": "websocket.close", "code": 1013, "reason": "too slow"})
    except TimeoutError:
        pass


async def serve(protocol: type[WebSocketsSansIOProtocol]) -> AsyncIterator[uvicorn.Server]:
    config = uvicorn.Config(
        stalls_then_gives_up,
        host="127.0.0.1",
        port=free_port(),
        ws=protocol,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:
            await asyncio.sleep(0.01)
    yield server
    server.should_exit = True
    server.force_exit = True
    await asyncio.wait_for(task, WAIT_S)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[uvicorn.Server]:
    monkeypatch.setattr(serving, "WS_CLOSE_GRACE_S", GRACE_S)
    async for running in serve(serving.CloseDeadlineWebSocketProtocol):
        yield running


async def test_a_connection_whose_close_cannot_be_delivered_is_aborted(server: uvicorn.Server) -> None:
    """A client that stopped reading: once the app has given up on it (frames and close undeliverable),
    the server drops the connection within the grace instead of keeping it, and its buffers, for ever."""
    port = server.config.port
    client = await asyncio.to_thread(RawWebSocket, "127.0.0.1", port, "/", recv_buffer=4096)
    try:
        await asyncio.to_thread(client.send_text, json.dumps({"type": "hello"}))
        async with asyncio.timeout(WAIT_S):
            while not server.server_state.connections:  # the upgrade reached the app
                await asyncio.sleep(0.01)
            while server.server_state.connections:  # until the server let the connection go
                await asyncio.sleep(0.01)
    finally:
        client.close()
