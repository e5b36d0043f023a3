"""Live progress: the WebSocket (`/api/ws/progress`) and the history it can be replayed from over HTTP.

The protocol itself lives in `app.live.session` (framework-free). The socket is served by a small ASGI
endpoint that `app.asgi.BookmarksApp` dispatches to before Litestar: a delivery is one `send` of one dict,
without Litestar's and advanced-alchemy's wrappers around every message (docs/benchmarks.md, P3). It keeps
the checks a Litestar route had (Origin, token, limits) and is described in the OpenAPI document's text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Final
from uuid import UUID

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import (
    Receive,
    Scope,
    Send,
    WebSocketAcceptEvent,
    WebSocketCloseEvent,
    WebSocketSendEvent,
)

from app.api.deps import CurrentUser, DbSession, Events
from app.api.errors import error_responses
from app.api.schemas import MAX_SAFE_INT, ProgressHistory
from app.auth import TooManyFailures, limit_failures, same_origin_or_allowed
from app.live.session import Identity, RateLimited, SocketDisconnected, run_progress_session
from app.live.store import LiveToken, SeqText
from app.services import jobs as job_service
from app.services.users import presented_token_hash

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN_ORIGIN = 4403
PROGRESS_SOCKET_PATH: Final = "/api/ws/progress"
PROGRESS_SOCKET_DOC: Final = """\
**Live progress: the WebSocket `GET /api/ws/progress`** (not an HTTP operation, so not listed below).

The client speaks first, within 5 s: `{"type":"hello","token":"<api token>","after":<last seq or null>}`
(no token in the URL). The server answers either a replay, `{"type":"event",...}` for every seq after
`after` then `{"type":"ready","seq":S,"resumed":true}`, or `{"type":"snapshot","seq":S,"jobs":[...]}` then
`{"type":"ready","seq":S,"resumed":false}`; then live events with seq > S, in order, each once (an event has
the shape of `ProgressEvent`, as in the history routes). A `snapshot` may come again if the socket fell
behind. Send `{"type":"ping"}` for a `{"type":"pong"}`.

Close codes: 4401 unauthenticated (the token is unknown, revoked or expired: forget it), 4403 origin not
allowed, 4429 too many sockets, 4430 rate limited (the reason says `retry in N s`), 1008 bad message, 1009
message too big (over 64 KiB), 1011 internal error, 1012 server restarting, 1013 too slow. Reconnect with
exponential backoff and jitter (0.5 s doubling to 30 s) and resume with `after`. The same events over HTTP:
`/api/progress` and `/api/jobs/{job_id}/progress-history`.
"""
"""The OpenAPI document's description (an OpenAPI document has no place for a WebSocket operation)."""

AfterSeq = Annotated[int, QueryParameter(ge=0, le=MAX_SAFE_INT)]
HistoryLimit = Annotated[int, QueryParameter(ge=1, le=1000)]


HISTORY_PAGE = ResponseSpec(
    data_container=ProgressHistory, description="A page of events in seq order", generate_examples=False
)
"""The 200 answer as it is (the handlers return bytes, which Litestar would document as a string)."""


def history_body(events: list[SeqText], limit: int) -> bytes:
    """`{"events": [...], "next_after_seq": N|null}` spliced from the stored JSON: no re-encoding."""
    next_after = events[-1][0] if len(events) == limit else None
    joined = ",".join(text for _, text in events)
    return f'{{"events":[{joined}],"next_after_seq":{"null" if next_after is None else next_after}}}'.encode()


class HistoryController(Controller):
    tags = ["progress"]

    @get(
        "/api/jobs/{job_id:uuid}/progress-history",
        operation_id="jobProgressHistory",
        responses={HTTP_200_OK: HISTORY_PAGE, **error_responses(404)},
    )
    async def job_history(
        self,
        db_session: DbSession,
        user: CurrentUser,
        event_store: Events,
        job_id: FromPath[UUID],
        after_seq: AfterSeq = 0,
        limit: HistoryLimit = 1000,
    ) -> Response[bytes]:
        """One job's events in seq order (keyset paging on seq)."""
        await job_service.get_owned_job(db_session, user.id, job_id)
        events = await event_store.job_history(user.id, job_id, after_seq, limit)
        return Response(history_body(events, limit), media_type="application/json")

    @get(
        "/api/progress",
        operation_id="progressHistory",
        responses={HTTP_200_OK: HISTORY_PAGE, **error_responses()},
    )
    async def user_history(
        self,
        user: CurrentUser,
        event_store: Events,
        after_seq: AfterSeq = 0,
        limit: HistoryLimit = 1000,
    ) -> Response[bytes]:
        """The caller's whole event stream: what the WebSocket replays, over HTTP."""
        events = await event_store.user_history(user.id, after_seq, limit)
        return Response(history_body(events, limit), media_type="application/json")


class AsgiSocket:
    """An accepted WebSocket over the raw ASGI `receive` and `send`: what `run_progress_session` needs,
    and nothing more on the way of a frame."""

    __slots__ = ("_gone", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._gone = False

    async def receive_text(self) -> str:
        if self._gone:
            raise SocketDisconnected
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._gone = True
            raise SocketDisconnected
        text = message.get("text")
        return text if isinstance(text, str) else ""  # binary is neither a hello nor a ping: a bad message

    async def send_text(self, data: str) -> None:
        message: WebSocketSendEvent = {"type": "websocket.send", "text": data, "bytes": None}
        try:
            await self._send(message)
        except OSError:  # uvicorn's ClientDisconnected: the peer went away mid-send
            self._gone = True
            raise SocketDisconnected from None

    async def close(self, code: int, reason: str = "") -> None:
        message: WebSocketCloseEvent = {"type": "websocket.close", "code": code, "reason": reason}
        try:
            await self._send(message)
        except OSError:
            self._gone = True
            raise SocketDisconnected from None


class ProgressSocket:
    """The ASGI endpoint of `/api/ws/progress` (dispatched by `app.asgi.BookmarksApp`)."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self._runtime()
        if (await receive())["type"] != "websocket.connect":
            return  # the client left during the handshake
        # Accept first: a refusal before accept reaches browsers as 1006, not our close code.
        accept: WebSocketAcceptEvent = {"type": "websocket.accept", "subprotocol": None, "headers": []}
        await send(accept)
        socket = AsgiSocket(receive, send)
        origin = header(scope, b"origin")
        if not same_origin_or_allowed(
            origin, scope["scheme"], header(scope, b"host") or "", runtime.settings
        ):
            # A page on another site must not ride on a user's token to read their progress.
            log.warning("refused a progress socket from origin %s", origin)
            await socket.close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            return
        client = scope["client"][0] if scope["client"] else "unknown"

        async def identify(token: str) -> Identity | None:
            try:
                found = await limit_failures(
                    runtime.limits.auth_failures, client, check_token(runtime, token)
                )
            except TooManyFailures as limited:
                raise RateLimited(limited.retry_after_s) from None
            return None if found is None else Identity(found.user_id, found.token_id, found.expires_at)

        counters = runtime.counters
        counters.sockets_open += 1
        counters.sockets_total += 1
        try:
            result = await run_progress_session(
                socket,
                hub=runtime.hub,
                store=runtime.hub,  # the store's reads, a user's replay remembered (Hub.replayable)
                authenticate=identify,
                sockets=runtime.sockets,
                replay_max=runtime.settings.replay_max,
                watchdog=runtime.send_watchdog,
            )
        finally:
            counters.sockets_open -= 1
        counters.events_sent += result.events_sent
        counters.snapshots_sent += result.snapshots_sent


async def check_token(runtime: Runtime, token: str) -> LiveToken | None:
    """The valid token a hello presented: remembered (`RecentTokens`), else one query."""
    token_hash = presented_token_hash(token)
    if token_hash is None:
        return None
    found = runtime.recent_tokens.get(token_hash)
    if found is None:
        epoch = runtime.hub.auth_epoch
        found = await runtime.event_store.live_token(token_hash)
        if found is not None:
            runtime.recent_tokens.put(token_hash, found, checked_epoch=epoch)
    return found


def header(scope: Scope, name: bytes) -> str | None:
    """A request header of the scope (names are lowercase in ASGI), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
