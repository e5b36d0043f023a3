"""How uvicorn serves the app, for `bookmarks run` and for the tests' server processes alike.

Three things uvicorn gets wrong for us by default (README, "Security"):
- it believes `X-Forwarded-For` from 127.0.0.1, so any local client (or every client, behind a proxy on
  the same host) picks its own address and dodges the per-address limits: here only TRUSTED_PROXIES are
  believed, and by default nobody;
- it never times out a request whose headers do not finish (a slowloris holds a connection for ever):
  `HeaderDeadlineProtocol` closes it after HEADER_TIMEOUT_S;
- its access log prints query strings, where a careless client may put a token: `RedactQueries` cuts
  them from uvicorn's log lines (installed by the app itself, so it holds however uvicorn was started).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import click
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

APP: Final = "app.asgi:create_app_from_env"
HEADER_TIMEOUT_S: Final = 10.0
"""A client has this long from its first byte (or its connection) to the end of a request's headers."""
REDACTED: Final = "?[query removed]"

log = logging.getLogger(__name__)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` (and `Config`) that carry our settings."""
    return {
        "http": f"{__name__}:HeaderDeadlineProtocol",
        # An empty string trusts no one: uvicorn's own default, when unset, is 127.0.0.1.
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "proxy_headers": bool(settings.trusted_proxies),
    }


def uvicorn_arguments(settings: Settings) -> list[str]:
    """The same as `uvicorn` command-line arguments (for `python -m uvicorn`)."""
    options = uvicorn_options(settings)
    return [
        f"--http={options['http']}",
        f"--forwarded-allow-ips={options['forwarded_allow_ips']}",
        "--proxy-headers" if options["proxy_headers"] else "--no-proxy-headers",
    ]


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline on each request's headers: a connection that opens
    and sends nothing, or sends part of its headers and stalls, is answered 408 and closed."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a keep-alive connection's next request
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        log.info(
            "closed a connection from %s: no complete request headers within %.0f s",
            self.client,
            HEADER_TIMEOUT_S,
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()


class RedactQueries(logging.Filter):
    """Cuts the query string from the request targets in uvicorn's log lines (access and WebSocket)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_target_with_query(arg) for arg in record.args):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _is_target_with_query(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and "?" in value


def _without_query(value: object) -> object:
    if isinstance(value, str) and _is_target_with_query(value):
        return value.split("?", 1)[0] + REDACTED
    return value


def redact_uvicorn_logs() -> None:
    """Installs `RedactQueries` on uvicorn's loggers, once per process."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactQueries) for existing in logger.filters):
            logger.addFilter(RedactQueries())


@click.command(name="run", help="Serve the app with uvicorn (see README, 'Security', for what it adds).")
@click.option(
    "-H", "--host", default="127.0.0.1", show_default=True, envvar="LITESTAR_HOST", help="Bind address."
)
@click.option("-p", "--port", type=int, default=8000, show_default=True, envvar="LITESTAR_PORT", help="Port.")
@click.option(
    "-W",
    "--wc",
    "--web-concurrency",
    "workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar=["LITESTAR_WEB_CONCURRENCY", "WEB_CONCURRENCY"],
    help="Web processes (each its own hub).",
)
@click.option("-U", "--uds", default=None, help="Bind to this UNIX domain socket instead.")
@click.option("-F", "--fd", type=int, default=None, help="Bind to a socket from this file descriptor.")
@click.option("-r", "--reload", is_flag=True, help="Restart on code changes (development).")
@click.option("--ssl-certfile", default=None, help="Serve HTTPS with this certificate.")
@click.option("--ssl-keyfile", default=None, help="... and this key.")
def run_command(
    host: str,
    port: int,
    workers: int,
    uds: str | None,
    fd: int | None,
    reload: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Replaces Litestar's `run`, which cannot pass uvicorn these options."""
    import uvicorn

    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        uds=uds,
        fd=fd,
        reload=reload,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        **uvicorn_options(Settings.from_env()),
    )
