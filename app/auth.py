"""Bearer-token authentication for /api routes (the WebSocket authenticates with its hello frame)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.ratelimit import RateLimiter
from app.services.users import Authenticated, authenticate
from app.settings import Settings

if TYPE_CHECKING:
    from litestar.types import ASGIApp

    from app.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

PUBLIC_PATHS = ["^/api/health$", "^/schema", "^/static/", "^/$", "^/favicon", "^/metrics$"]
"""Everything else needs a token. Only /api/* and /saq/* exist besides these."""


CONSOLE_PREFIX = "/saq"
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Smart YouTube Bookmarks queue console", charset="UTF-8"'}


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """`Authorization: Bearer <token>`; under /saq also HTTP Basic with the token as the password, which
    a browser asks for and then resends by itself (the queue console's own requests carry no header)."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value and is_console(connection):
        try:
            _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


def is_console(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    path = connection.scope["path"]
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def origin_allowed(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> bool:
    return same_origin_or_allowed(
        connection.headers.get("origin"), connection.url.scheme, connection.headers.get("host", ""), settings
    )


def same_origin_or_allowed(origin: str | None, scheme: str, host: str, settings: Settings) -> bool:
    """Same origin by default. Clients that are not browsers send no Origin header and are let through."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    return origin == f"{scheme.replace('ws', 'http', 1)}://{host}" or origin in settings.allowed_origins


class TokenAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, *, runtime: Callable[[], Runtime], **options: Any) -> None:
        super().__init__(app, **options)
        self._runtime = runtime

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        challenge = BASIC_CHALLENGE if is_console(connection) else {"WWW-Authenticate": "Bearer"}
        token = presented_token(connection)
        if token is None:
            raise NotAuthorizedException(
                "missing bearer token: send 'Authorization: Bearer <token>'", headers=challenge
            )
        runtime = self._runtime()
        check = authenticate_in_session(runtime.sessions, token)
        found = await limit_failures(runtime.limits.auth_failures, client_key(connection), check)
        if found is None:
            log.info("rejected an unknown, revoked or expired token for %s", connection.url.path)
            raise NotAuthorizedException("invalid, revoked or expired token", headers=challenge)
        return AuthenticationResult(user=found.user, auth=found)


class TooManyFailures(TooManyRequestsException):
    """429 for an address past AUTH_FAILURES_PER_MINUTE failed token checks."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "too many failed sign-in attempts from your address; try again later",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


def client_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else "unknown"


async def authenticate_in_session(
    session_maker: Callable[[], AsyncSession], token: str
) -> Authenticated | None:
    async with session_maker() as session:
        return await authenticate(session, token)


async def limit_failures(failures: RateLimiter, client: str, check: Awaitable[T | None]) -> T | None:
    """A token check with a brake on failures only: a valid token always passes, whoever shares its
    address (a NAT, a proxy); past the limit, a bad token gets 429 instead of 401 (4430 on the socket).

    None: the token is unknown, revoked or expired (a definitive answer: 401, or 4401 on the socket).
    """
    found = await check
    if found is None and not failures.allow(client):
        raise TooManyFailures(failures.retry_after_s(client))
    return found
