"""The application factory: `create_app(settings)` wires everything; nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar, Request
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import CLIPluginProtocol, InitPluginProtocol

from app.api.errors import domain_error_handler
from app.api.imports import MULTIPART_OVERHEAD, ImportController
from app.api.jobs import JobController
from app.api.lists import ListController
from app.api.live import HistoryController, progress_socket, start_live, stop_live
from app.api.metrics import metrics
from app.api.system import SystemController
from app.api.videos import VideoController
from app.auth import PUBLIC_PATHS, TokenAuthMiddleware
from app.console import console_router
from app.dashboard import dashboard_handlers
from app.live.store import EventStore
from app.ratelimit import Limits, RateLimiter
from app.services.errors import DomainError
from app.settings import Settings
from db.config import alchemy_config
from db.models import User
from workers.queue import JobQueue, make_saq_queue
from workers.worker import InProcessWorker, make_worker

log = logging.getLogger(__name__)


def provide_user(request: Request[User, Any, Any]) -> User:
    return request.user


def provide_job_queue(state: State) -> JobQueue:
    queue: JobQueue = state.job_queue
    return queue


def provide_event_store(state: State) -> EventStore:
    store: EventStore = state.event_store
    return store


class BookmarksPlugin(InitPluginProtocol, CLIPluginProtocol):
    """Holds the settings and the long-lived resources of one web process."""

    def __init__(self, settings: Settings, alchemy: SQLAlchemyAsyncConfig) -> None:
        self.settings = settings
        self.alchemy = alchemy

    def on_cli_init(self, cli: Any) -> None:
        from app.cli import register_commands

        register_commands(cli)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        app_config.state["settings"] = self.settings
        app_config.state["limits"] = Limits(
            auth_failures=RateLimiter(self.settings.auth_failures_per_minute),
            imports=RateLimiter(self.settings.imports_per_minute),
        )
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        app.state.session_maker = self.alchemy.create_session_maker()
        job_queue = JobQueue(make_saq_queue(self.settings.dsn))
        await job_queue.connect()
        app.state.job_queue = job_queue
        await start_live(self.settings, app.state)
        worker_task = await self.start_in_process_worker() if self.settings.run_workers_in_web else None
        try:
            yield
        finally:
            if worker_task is not None:
                await worker_task.stop()
            await stop_live(app.state)
            await job_queue.disconnect()
            await self.alchemy.get_engine().dispose()

    async def start_in_process_worker(self) -> InProcessWorker:
        worker = InProcessWorker(make_worker(self.settings))
        await worker.start()
        return worker


def create_app(settings: Settings) -> Litestar:
    alchemy = alchemy_config(settings)
    return Litestar(
        route_handlers=[
            SystemController,
            ListController,
            VideoController,
            ImportController,
            JobController,
            HistoryController,
            progress_socket,
            metrics,
            *dashboard_handlers(),
            console_router(),
        ],
        plugins=[SQLAlchemyPlugin(config=alchemy), BookmarksPlugin(settings, alchemy)],
        dependencies={
            "user": Provide(provide_user, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
            "job_queue": Provide(provide_job_queue, sync_to_thread=False),
            "event_store": Provide(provide_event_store, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(TokenAuthMiddleware, exclude=PUBLIC_PATHS)],
        exception_handlers={DomainError: domain_error_handler},
        request_max_body_size=settings.import_max_bytes + MULTIPART_OVERHEAD,
        openapi_config=OpenAPIConfig(
            title="Smart YouTube Bookmarks",
            version="0.1.0",
            path="/schema",
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{"BearerToken": []}],
        ),
        logging_config=LoggingConfig(
            root={"level": "INFO", "handlers": ["queue_listener"]},
            log_exceptions="always",
            disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 429},
        ),
        debug=settings.debug,
    )


def create_app_from_env() -> Litestar:
    """Zero-argument factory for the CLI and `uvicorn --factory`: reads the environment once, here."""
    return create_app(Settings.from_env())
