"""The floor for P3: the smallest LISTEN → WebSocket fan-out under the same uvicorn, no framework, no app.

A raw ASGI app in the shape of encode/broadcaster: one asyncpg connection LISTENs on every channel, one
`asyncio.Queue` and one sender task per socket. Tokens map to users through `BARE_TOKENS` (a JSON object
token → user id), so a hello costs no query. Serve it with

    uvicorn --factory bench.bare_server:create_app_from_env

It measures what any design in Python on this machine pays per socket (memory) and per delivery (fan-out),
so the app's figures can be read as a ratio against it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BareFanout:
    def __init__(self, dsn: str, tokens: dict[str, str]) -> None:
        self.dsn = dsn
        self.tokens = tokens
        self.queues: dict[str, set[asyncio.Queue[str]]] = {}
        self.conn: asyncpg.Connection[asyncpg.Record] | None = None

    async def start(self) -> None:
        self.conn = await asyncpg.connect(self.dsn)
        for user_id in set(self.tokens.values()):
            await self.conn.add_listener(f"progress_user_{user_id}", self.on_notification)

    async def stop(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    def on_notification(self, conn: object, pid: int, channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        frame = '{"type":"event",' + payload[1:]
        for queue in self.queues.get(channel, ()):
            queue.put_nowait(frame)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["type"] == "websocket":
            await self.socket(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def socket(self, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        hello = await receive()
        if hello["type"] != "websocket.receive":
            return
        user_id = self.tokens.get(json.loads(hello["text"])["token"])
        if user_id is None:
            await send({"type": "websocket.close", "code": 4401})
            return
        channel = f"progress_user_{user_id}"
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues.setdefault(channel, set()).add(queue)
        await send({"type": "websocket.send", "text": '{"type":"ready","seq":0,"resumed":false}'})
        sender = asyncio.create_task(self.pump(queue, send))
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sender.cancel()
            self.queues[channel].discard(queue)

    async def pump(self, queue: asyncio.Queue[str], send: Send) -> None:
        while True:
            await send({"type": "websocket.send", "text": await queue.get()})


def create_app_from_env() -> ASGIApp:
    return BareFanout(os.environ["DATABASE_URL"], json.loads(os.environ["BARE_TOKENS"]))
