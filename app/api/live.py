"""Live progress: the WebSocket (`/api/ws/progress`) and the history it can be replayed from over HTTP.

The protocol itself lives in `app.live.session` (framework-free); this module only adapts Litestar to it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from app.api.deps import AppRuntime, CurrentUser, DbSession, Events
from app.api.errors import error_responses
from app.api.schemas import MAX_SAFE_INT, ProgressHistory
from app.auth import TooManyFailures, authenticate_limited, client_key, origin_allowed
from app.live.session import Identity, RateLimited, run_progress_session
from app.live.store import SeqText
from app.services import jobs as job_service

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN_ORIGIN = 4403

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


@websocket("/api/ws/progress", operation_id="progressSocket")
async def progress_socket(socket: WebSocket[Any, Any, Any], runtime: AppRuntime) -> None:
    settings = runtime.settings

    async def identify(token: str) -> Identity | None:
        try:
            found = await authenticate_limited(
                runtime.sessions, runtime.limits.auth_failures, client_key(socket), token
            )
        except TooManyFailures as limited:
            raise RateLimited(limited.retry_after_s) from None
        return None if found is None else Identity(found.user.id, found.token_id, found.expires_at)

    # Accept first: a refusal before accept reaches browsers as 1006, not our close code.
    await socket.accept()
    if not origin_allowed(socket, settings):
        # A page on another site must not ride on a user's token to read their progress.
        log.warning("refused a progress socket from origin %s", socket.headers.get("origin"))
        await socket.close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    counters = runtime.counters
    counters.sockets_open += 1
    counters.sockets_total += 1
    try:
        result = await run_progress_session(
            socket,
            hub=runtime.hub,
            store=runtime.event_store,
            authenticate=identify,
            sockets=runtime.sockets,
            replay_max=settings.replay_max,
            disconnect_errors=(WebSocketDisconnect,),
        )
    finally:
        counters.sockets_open -= 1
    counters.events_sent += result.events_sent
    counters.snapshots_sent += result.snapshots_sent
