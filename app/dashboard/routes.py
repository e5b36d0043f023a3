"""Serves the dashboard page at `/` and its files under `/static/`, with security headers.

The page signs in client-side (the token lives in the browser), so nothing here needs authentication.
The CSP allows no inline script or style: the page is `index.html` plus ES modules and one stylesheet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader, MutableScopeHeaders
from litestar.enums import MediaType, ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send

from workers.thumbnails import csp_image_sources

STATIC_DIR: Final = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        " ".join(["img-src 'self'", *csp_image_sources(), "data:"]),  # the thumbnails' hosts
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Revalidate every time: the files are small, and a stale module next to a fresh one breaks the page.
REVALIDATE: Final = CacheControlHeader(no_cache=True)
PUBLIC: Final = {"exclude_from_auth": True}


class SecurityHeadersMiddleware(ASGIMiddleware):
    """Adds SECURITY_HEADERS (or the given headers) to every response of a router.

    A middleware rather than `response_headers`: the static files handler sends its response itself,
    bypassing the layered response headers, and its JavaScript needs `nosniff` as much as the page.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        self.headers = dict(headers)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)


def dashboard_handlers() -> list[ControllerRouterHandler]:
    """The page and its static files, as one router to pass to `Litestar(route_handlers=[...])`."""
    page = (STATIC_DIR / "index.html").read_bytes()

    @get("/", include_in_schema=False, opt=PUBLIC, cache_control=REVALIDATE, sync_to_thread=False)
    def index() -> Response[bytes]:
        return Response(page, media_type=MediaType.HTML)

    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        opt=PUBLIC,
        cache_control=REVALIDATE,
        include_in_schema=False,
    )
    return [Router(path="/", route_handlers=[index, static], middleware=[SecurityHeadersMiddleware()])]
