"""Bearer-token authentication for /api routes (the WebSocket authenticates with its hello frame)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.users import authenticate

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
        session_maker: Callable[[], AsyncSession] = connection.app.state.session_maker
        async with session_maker() as session:
            user = await authenticate(session, token)
        if user is None:
            log.info("rejected an unknown or revoked token for %s", connection.url.path)
            raise NotAuthorizedException("invalid or revoked token")
        return AuthenticationResult(user=user, auth=None)
