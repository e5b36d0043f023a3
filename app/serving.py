"""How uvicorn serves the app, for `bookmarks run` and for the tests' server processes alike.

Five things uvicorn gets wrong for us by default (README, "Security"):
- it believes `X-Forwarded-For` from 127.0.0.1, so any local client (or every client, behind a proxy on
  the same host) picks its own address and dodges the per-address limits: here only TRUSTED_PROXIES are
  believed, and by default nobody;
- it never times out a request whose headers do not finish (a slowloris holds a connection for ever):
  `HeaderDeadlineProtocol` closes it after HEADER_TIMEOUT_S;
- its access log prints query strings, where a careless client may put a token, and at DEBUG the
  websockets library dumps each handshake's headers (cookies, authorization) and the client's frames (the
  hello carries the token): `RedactSecrets` cuts them from uvicorn's log lines (installed by the app
  itself, so it holds however uvicorn was started, and whatever LOG_LEVEL says);
- it accepts WebSocket messages of up to 16 MiB, which anyone may send before authenticating: a client of
  the progress socket only ever sends a hello or a ping, so a message over WS_MAX_SIZE closes the socket
  (1009) before it is buffered whole;
- once the app is done with a WebSocket it closes the transport, and asyncio's close waits for the write
  buffer to drain: for ever when the client stopped reading (a socket closed 1013 for being too slow,
  whose close frame cannot get through either), so its descriptor and buffers outlive the session while
  the per-user socket limit already counts it gone: `CloseDeadlineWebSocketProtocol` aborts it after
  WS_CLOSE_GRACE_S.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.settings import Settings

APP: Final = "app.asgi:create_app_from_env"
HEADER_TIMEOUT_S: Final = 10.0
"""A client has this long from its first byte (or its connection) to the end of a request's headers."""
WS_MAX_SIZE: Final = 64 * 1024
"""The largest WebSocket message a client may send (a hello with its token is about 100 bytes)."""
WS_CLOSE_GRACE_S: Final = 10.0
"""A WebSocket connection has this long to finish closing once the app is done with it: as long as uvicorn
waits for a client's reply to a close frame."""
REDACTED: Final = "?[query removed]"
REMOVED: Final = "[removed]"
CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
CLIENT_FRAME_DUMP: Final = "< %s"
"""websockets' DEBUG line for a frame the client sent: `< TEXT '{"type": "hello", "token": …}' [93 bytes]`."""
HEADER_DUMP: Final = frozenset({"< %s: %s", "> %s: %s"})
DATA_FRAMES: Final = frozenset({"TEXT", "BINARY", "CONT"})

log = logging.getLogger(__name__)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` (and `Config`) that carry our settings."""
    return {
        "http": f"{__name__}:HeaderDeadlineProtocol",
        # An empty string trusts no one: uvicorn's own default, when unset, is 127.0.0.1.
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "proxy_headers": bool(settings.trusted_proxies),
        "ws": f"{__name__}:CloseDeadlineWebSocketProtocol",
        "ws_max_size": WS_MAX_SIZE,
    }


def uvicorn_arguments(settings: Settings) -> list[str]:
    """The same as `uvicorn` command-line arguments (for `python -m uvicorn`)."""
    options = uvicorn_options(settings)
    return [
        f"--http={options['http']}",
        f"--forwarded-allow-ips={options['forwarded_allow_ips']}",
        "--proxy-headers" if options["proxy_headers"] else "--no-proxy-headers",
        f"--ws={options['ws']}",
        f"--ws-max-size={options['ws_max_size']}",
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


class CloseDeadlineWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol (the one its `auto` picks), plus a deadline on the close: a connection
    still open WS_CLOSE_GRACE_S after the app returned (its client stopped reading, so neither the buffered
    frames nor the close frame can leave) is aborted, freeing its descriptor and buffers."""

    _lost = False

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self._lost:
            self.loop.call_later(WS_CLOSE_GRACE_S, self._abort_if_open)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        super().connection_lost(exc)

    def _abort_if_open(self) -> None:
        if self._lost:
            return
        log.info(
            "aborted a WebSocket connection from %s: still not closed %.0f s after its session ended "
            "(%d bytes unsent)",
            self.client,
            WS_CLOSE_GRACE_S,
            self.transport.get_write_buffer_size(),
        )
        self.transport.abort()


class RedactSecrets(logging.Filter):
    """Cuts what may hold a token from uvicorn's log lines: the query string of request targets (access and
    WebSocket lines), and in websockets' DEBUG wire dumps the values of credential headers and the
    contents of the client's frames (their kind and size stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        if record.msg in HEADER_DUMP and len(args) == 2 and str(args[0]).lower() in CREDENTIAL_HEADERS:
            record.args = (args[0], REMOVED)
        elif record.msg == CLIENT_FRAME_DUMP and len(args) == 1:
            record.args = (_without_data(str(args[0])),)
        elif any(_is_target_with_query(arg) for arg in args):
            record.args = tuple(_without_query(arg) for arg in args)
        return True


def _without_data(frame: str) -> str:
    """`TEXT '{"type": "hello", …}' [93 bytes]` → `TEXT [removed] [93 bytes]`; control frames (CLOSE, PING)
    as they are."""
    kind, _, rest = frame.partition(" ")
    if kind not in DATA_FRAMES:
        return frame
    return f"{kind} {REMOVED}{rest[rest.rfind(' [') :] if ' [' in rest else ''}"


def _is_target_with_query(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and "?" in value


def _without_query(value: object) -> object:
    if isinstance(value, str) and _is_target_with_query(value):
        return value.split("?", 1)[0] + REDACTED
    return value


def redact_uvicorn_logs() -> None:
    """Installs `RedactSecrets` on uvicorn's loggers, once per process."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())
