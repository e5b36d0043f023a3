"""Health and identity."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import AppRuntime, CurrentUser
from app.api.errors import error_responses
from app.api.schemas import Me
from app.pgversion import read_server_version
from app.services import jobs as job_service

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0


class SystemController(Controller):
    tags = ["system"]

    @get(
        "/api/health",
        operation_id="health",
        exclude_from_auth=True,
        # `{}`: no credentials needed (the document's default asks every operation for a bearer token).
        security=[{}],
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=dict[str, Any],
                description="A dependency is down: the same report, with `status` 'degraded'",
                generate_examples=False,
            )
        },
    )
    async def health(self, runtime: AppRuntime) -> Response[dict[str, Any]]:
        """DB reachable, live hub connected, queue reachable (503 when any is not); and how many jobs
        are running with no live heartbeat (stalled)."""
        checks: dict[str, Any] = {}
        checks["database"] = await _probe(_database_ok(runtime.sessions))
        checks["queue"] = await _probe(runtime.job_queue.ping())
        checks["jobs"] = await _probe(_jobs(runtime.sessions, runtime.settings.job_heartbeat_s))
        hub = runtime.hub.status()
        checks["hub"] = hub
        healthy = checks["database"]["ok"] and checks["queue"]["ok"] and hub.connected
        body = {"status": "ok" if healthy else "degraded", **checks}
        return Response(body, status_code=HTTP_200_OK if healthy else HTTP_503_SERVICE_UNAVAILABLE)

    @get("/api/me", operation_id="me", responses=error_responses())
    async def me(self, user: CurrentUser) -> Me:
        return Me(id=user.id, email=user.email, created_at=user.created_at, is_admin=user.is_admin)


async def _database_ok(session_maker: Callable[[], AsyncSession]) -> dict[str, Any]:
    async with session_maker() as session:
        version = await read_server_version(session)
    return version.report()


async def _jobs(session_maker: Callable[[], AsyncSession], job_heartbeat_s: int) -> dict[str, Any]:
    """Reported, not judged: a stalled job is the workers' problem, not this process's health."""
    async with session_maker() as session:
        stalled = await job_service.count_stalled(session, job_heartbeat_s)
    return {"stalled": stalled, "stalled_after_s": job_service.stalled_after_s(job_heartbeat_s)}


async def _probe(check: Any) -> dict[str, Any]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            details = await check
    except Exception as exc:  # a health probe reports every failure instead of raising it
        log.warning("health probe failed: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, **details}
