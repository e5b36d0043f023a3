"""Bearer-token authentication for /api routes (the WebSocket authenticates with its hello frame)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.ratelimit import RateLimiter
from app.services.users import authenticate
from db.models import User

log = logging.getLogger(__name__)

PUBLIC_PATHS = ["^/api/health$", "^/api/ws/", "^/schema", "^/static/", "^/$", "^/favicon", "^/metrics$"]
"""Everything else needs a token. Only /api/* and /saq/* exist besides these."""


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection)
        if token is None:
            raise NotAuthorizedException("missing bearer token: send 'Authorization: Bearer <token>'")
        state = connection.app.state
        user = await authenticate_limited(
            state.session_maker, state.limits.auth_failures, client_key(connection), token
        )
        if user is None:
            log.info("rejected an unknown or revoked token for %s", connection.url.path)
            raise NotAuthorizedException("invalid or revoked token")
        return AuthenticationResult(user=user, auth=None)


def client_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else "unknown"


async def authenticate_limited(
    session_maker: Callable[[], AsyncSession], failures: RateLimiter, client: str, token: str
) -> User | None:
    """Token check with a brake: a client that keeps failing gets 429 before any database query."""
    if failures.exhausted(client):
        raise TooManyRequestsException(
            "too many failed sign-in attempts; try again later",
            headers={"Retry-After": str(failures.retry_after_s(client))},
        )
    async with session_maker() as session:
        user = await authenticate(session, token)
    if user is None:
        failures.allow(client)
    return user
