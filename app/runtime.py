"""The long-lived resources of one web process, as one typed object.

`open_runtime` builds it in the plugin's lifespan (and takes it down in reverse order); route handlers get
it, or one of its parts, by dependency injection (`app/api/deps.py`), and the auth middleware through the
plugin. Nothing is kept in Litestar's untyped `app.state`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.pool import ImportParser
from app.live.hub import Hub
from app.live.session import SendWatchdog, SocketRegistry
from app.live.store import EventStore
from app.live.tokens import RecentTokens
from app.ratelimit import Limits, RateLimiter
from app.settings import Settings
from workers.queue import JobQueue, make_saq_queue

SEND_TIMEOUT_S = 30.0
"""A socket whose sends make no progress this long is closed with 1013 (docs/design.md, "The hub")."""


@dataclass
class LiveCounters:
    """Process-wide socket counters, updated by the WebSocket route as sessions open and end."""

    sockets_open: int = 0
    sockets_total: int = 0
    events_sent: int = 0
    snapshots_sent: int = 0


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: Callable[[], AsyncSession]
    """Short sessions outside a request (the token check, health); handlers get `db_session` instead."""
    job_queue: JobQueue
    event_store: EventStore
    hub: Hub
    sockets: SocketRegistry
    limits: Limits
    import_parser: ImportParser
    recent_tokens: RecentTokens
    """The socket's memory of valid tokens (forgotten whenever the hub hears of a change)."""
    send_watchdog: SendWatchdog = field(default_factory=lambda: SendWatchdog(SEND_TIMEOUT_S))
    """Closes (1013) the sockets whose client stopped reading."""
    counters: LiveCounters = field(default_factory=LiveCounters)


@asynccontextmanager
async def open_runtime(settings: Settings, sessions: Callable[[], AsyncSession]) -> AsyncIterator[Runtime]:
    async with AsyncExitStack() as stack:
        job_queue = JobQueue(make_saq_queue(settings.dsn), heartbeat_s=settings.job_heartbeat_s)
        await job_queue.connect()
        stack.push_async_callback(job_queue.disconnect)
        event_store = await EventStore.open(settings.dsn)
        stack.push_async_callback(event_store.close)
        hub = Hub(settings.dsn, event_store)
        await hub.start()
        stack.push_async_callback(hub.stop)
        import_parser = ImportParser()
        stack.callback(import_parser.close)
        yield Runtime(
            settings=settings,
            sessions=sessions,
            job_queue=job_queue,
            event_store=event_store,
            hub=hub,
            sockets=SocketRegistry(settings.max_sockets_per_user),
            limits=Limits(
                auth_failures=RateLimiter(settings.auth_failures_per_minute),
                imports=RateLimiter(settings.imports_per_minute),
            ),
            import_parser=import_parser,
            recent_tokens=RecentTokens(hub),
        )
