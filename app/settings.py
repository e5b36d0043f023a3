"""Settings, read once from the environment into a typed object.

Nothing in the project reads the environment anywhere else: `Settings.from_env()` is called by the CLI
(and tests build `Settings(...)` directly), and the object is passed down to the app and worker factories.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the variable."""


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "smart-youtube-bookmarks"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """A plain libpq URL. None: the app starts its own embedded Postgres under `data_dir`."""
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    youtube_api_key: str | None = None
    youtube_api_url: str = "https://www.googleapis.com/youtube/v3"
    youtube_oembed_url: str = "https://www.youtube.com/oembed"
    youtube_daily_quota: int = 10_000
    """Data API units the app may spend a day (Pacific time, as Google counts); `videos.list` costs one
    unit a call of up to 50 ids. Jobs wait for the reset rather than cross it (app/services/quota.py)."""
    progress_interval_ms: int = 250
    progress_retention_days: int = 30
    replay_max: int = 5000
    max_sockets_per_user: int = 20
    import_max_bytes: int = 10 * 1024 * 1024
    import_max_rows: int = 50_000
    worker_concurrency: int = 4
    job_heartbeat_s: int = 15
    """A running job touches its SAQ row every third of this; silent this long, its worker is presumed
    dead (SIGKILL, lost host) and SAQ's sweep retries the job elsewhere."""
    queue_sweep_s: int = 5
    """How often each worker's SAQ sweep looks for such jobs (SAQ's default of 60 s leaves one dead a
    minute)."""
    run_workers_in_web: bool = True
    """Single-machine mode: `bookmarks run` also runs the SAQ workers in-process."""
    db_pool_size: int = 10
    auth_failures_per_minute: int = 30
    """Failed token checks allowed per client address per minute; past it, 429 without a database query."""
    imports_per_minute: int = 30
    metrics_token: str | None = None
    """Enables `/metrics` for scrapers that send this bearer token."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (besides the app's own) whose pages may open the progress WebSocket."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks whose X-Forwarded-For / X-Forwarded-Proto uvicorn believes (app/serving.py);
    empty: nobody's, so no client can choose the address the limits count it under."""
    log_level: str = "INFO"
    """DEBUG adds per-request lines (uvicorn's access log, httpx, SAQ); WARNING keeps only problems."""
    log_format: Literal["text", "json"] = "text"
    """json: one JSON object a line (time, level, logger, message, exception), for log collectors."""
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        reader = _EnvReader(env)
        defaults = cls()
        log_format = reader.choice("LOG_FORMAT", defaults.log_format, LOG_FORMATS)
        return cls(
            database_url=normalise_database_url(env["DATABASE_URL"]) if env.get("DATABASE_URL") else None,
            data_dir=Path(env["BOOKMARKS_DATA_DIR"])
            if env.get("BOOKMARKS_DATA_DIR")
            else _default_data_dir(env),
            youtube_api_key=env.get("YOUTUBE_API_KEY") or None,
            youtube_api_url=env.get("YOUTUBE_API_URL", defaults.youtube_api_url).rstrip("/"),
            youtube_oembed_url=env.get("YOUTUBE_OEMBED_URL", defaults.youtube_oembed_url),
            youtube_daily_quota=reader.int("YOUTUBE_DAILY_QUOTA", defaults.youtube_daily_quota, minimum=1),
            progress_interval_ms=reader.int("PROGRESS_INTERVAL_MS", defaults.progress_interval_ms, minimum=0),
            progress_retention_days=reader.int(
                "PROGRESS_RETENTION_DAYS", defaults.progress_retention_days, minimum=1
            ),
            replay_max=reader.int("REPLAY_MAX", defaults.replay_max, minimum=0),
            max_sockets_per_user=reader.int("MAX_SOCKETS_PER_USER", defaults.max_sockets_per_user, minimum=1),
            import_max_bytes=reader.int("IMPORT_MAX_BYTES", defaults.import_max_bytes, minimum=1),
            import_max_rows=reader.int("IMPORT_MAX_ROWS", defaults.import_max_rows, minimum=1),
            worker_concurrency=reader.int("WORKER_CONCURRENCY", defaults.worker_concurrency, minimum=1),
            job_heartbeat_s=reader.int("JOB_HEARTBEAT_S", defaults.job_heartbeat_s, minimum=1),
            queue_sweep_s=reader.int("QUEUE_SWEEP_S", defaults.queue_sweep_s, minimum=1),
            run_workers_in_web=reader.bool("RUN_WORKERS_IN_WEB", defaults.run_workers_in_web),
            db_pool_size=reader.int("DB_POOL_SIZE", defaults.db_pool_size, minimum=1),
            auth_failures_per_minute=reader.int(
                "AUTH_FAILURES_PER_MINUTE", defaults.auth_failures_per_minute, minimum=1
            ),
            imports_per_minute=reader.int("IMPORTS_PER_MINUTE", defaults.imports_per_minute, minimum=1),
            metrics_token=env.get("METRICS_TOKEN") or None,
            allowed_origins=tuple(
                o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
            ),
            trusted_proxies=reader.addresses("TRUSTED_PROXIES"),
            log_level=reader.choice("LOG_LEVEL", defaults.log_level, LOG_LEVELS).upper(),
            log_format="json" if log_format == "json" else "text",
            debug=reader.bool("DEBUG", defaults.debug),
        )

    @property
    def dsn(self) -> str:
        """The libpq URL (asyncpg and SAQ's psycopg take it as it is)."""
        if self.database_url is None:
            raise SettingsError("no database configured: start the embedded Postgres first")
        return self.database_url

    @property
    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(self.dsn)


@dataclass(frozen=True)
class _EnvReader:
    env: Mapping[str, str]

    def int(self, name: str, default: int, *, minimum: int) -> int:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def addresses(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses and networks (`10.0.0.0/8`), or `*` for everyone."""
        items = tuple(item.strip() for item in self.env.get(name, "").split(",") if item.strip())
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(f"{name} must list IP addresses or networks, got {item!r}") from None
        return items

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")


def normalise_database_url(url: str) -> str:
    """Accept `postgres://` and `postgresql+driver://` spellings; keep one plain libpq URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in {"postgres", "postgresql"}:
        raise SettingsError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(("postgresql", *parts[1:]))


def sqlalchemy_url(dsn: str) -> str:
    """The same URL for SQLAlchemy's asyncpg dialect; a unix-socket `?host=/dir` query passes through."""
    parts = urlsplit(dsn)
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


def replace_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
