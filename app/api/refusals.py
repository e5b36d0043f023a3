"""Clean refusals for inputs that would otherwise reach Litestar or the OS and come back as a 500.

- JSON nested deeper than the interpreter's recursion limit: msgspec raises RecursionError (not a
  DecodeError) while decoding it. Here it is a 400 saying so.
- A NUL in a request path: it names nothing, and would reach `os.stat` in the static files handler
  (ValueError: embedded null byte). Here it is a 404, for every route.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import SerializationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.errors import ErrorBody


class BoundedRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            # Litestar answers a SerializationException from body parsing with 400 and its text as detail.
            raise SerializationException("the JSON body is nested too deeply") from None


class RefuseNulPaths(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if "\x00" not in scope["path"]:
            await next_app(scope, receive, send)
            return
        if scope["type"] == ScopeType.WEBSOCKET:
            await send({"type": "websocket.close", "code": 1008, "reason": "no such path"})
            return
        body = msgspec.json.encode(ErrorBody(status_code=404, detail="no such path (it has a NUL character)"))
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
