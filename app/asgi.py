"""The application factory: `create_app(settings)` wires everything; nothing happens at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar, Request
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp, LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from app.api.deps import provide_event_store, provide_job_queue
from app.api.docs import OfflineSwaggerUI, docs_router
from app.api.errors import domain_error_handler
from app.api.imports import MULTIPART_OVERHEAD, MULTIPART_PART_LIMIT, ImportController
from app.api.jobs import JobController, RetryController
from app.api.lists import ListController
from app.api.live import PROGRESS_SOCKET_DOC, PROGRESS_SOCKET_PATH, HistoryController, ProgressSocket
from app.api.metrics import metrics
from app.api.refusals import BoundedRequest, RefuseNulPaths
from app.api.system import SystemController
from app.api.videos import VideoController
from app.auth import PUBLIC_PATHS, TokenAuthMiddleware
from app.console import console_router
from app.dashboard import dashboard_handlers
from app.database import alchemy_config
from app.gc_policy import FreezeLongLived
from app.logs import litestar_logging_config
from app.runtime import Runtime, open_runtime
from app.services.errors import DomainError
from app.serving import redact_uvicorn_logs
from app.settings import Settings
from db.models import User
from workers.worker import InProcessWorker, make_worker

log = logging.getLogger(__name__)


def provide_user(request: Request[User, Any, Any]) -> User:
    return request.user


class BookmarksPlugin(InitPluginProtocol):
    """Builds this web process's `Runtime` in the app's lifespan, and runs the in-process worker."""

    def __init__(self, settings: Settings, alchemy: SQLAlchemyAsyncConfig) -> None:
        self.settings = settings
        self.alchemy = alchemy
        self._runtime: Runtime | None = None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the app's lifespan has not started (or has ended)")
        return self._runtime

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        try:
            async with open_runtime(self.settings, self.alchemy.create_session_maker()) as runtime:
                self._runtime = runtime
                worker = await self.start_in_process_worker() if self.settings.run_workers_in_web else None
                gc_policy = FreezeLongLived()
                gc_policy.start()
                thawing = asyncio.create_task(gc_policy.maintain(), name="gc-maintenance")
                try:
                    yield
                finally:
                    thawing.cancel()
                    await asyncio.gather(thawing, return_exceptions=True)
                    gc_policy.stop()
                    if worker is not None:
                        await worker.stop()
                    self._runtime = None
        finally:
            await self.alchemy.get_engine().dispose()

    async def start_in_process_worker(self) -> InProcessWorker:
        worker = InProcessWorker(make_worker(self.settings))
        await worker.start()
        return worker


class BookmarksApp(Litestar):
    """Litestar, with the progress socket served before it (`app.api.live.ProgressSocket`): a frame sent
    to a socket then passes no framework wrapper."""

    def __init__(self, *, progress_socket: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._progress_socket = progress_socket

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] == ScopeType.WEBSOCKET and cast("Scope", scope)["path"] == PROGRESS_SOCKET_PATH:
            await self._progress_socket(cast("Scope", scope), cast("Receive", receive), cast("Send", send))
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Litestar:
    redact_uvicorn_logs()
    alchemy = alchemy_config(settings)
    plugin = BookmarksPlugin(settings, alchemy)
    return BookmarksApp(
        progress_socket=ProgressSocket(plugin.runtime),
        route_handlers=[
            SystemController,
            ListController,
            VideoController,
            ImportController,
            JobController,
            RetryController,
            HistoryController,
            metrics,
            *dashboard_handlers(),
            console_router(settings),
        ],
        plugins=[SQLAlchemyPlugin(config=alchemy), plugin],
        dependencies={
            "user": Provide(provide_user, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
            "runtime": Provide(plugin.runtime, sync_to_thread=False),
            "job_queue": Provide(provide_job_queue, sync_to_thread=False),
            "event_store": Provide(provide_event_store, sync_to_thread=False),
        },
        middleware=[
            RefuseNulPaths(),
            DefineMiddleware(TokenAuthMiddleware, exclude=PUBLIC_PATHS, runtime=plugin.runtime),
        ],
        request_class=BoundedRequest,
        multipart_form_part_limit=MULTIPART_PART_LIMIT,
        exception_handlers={DomainError: domain_error_handler},
        request_max_body_size=settings.import_max_bytes + MULTIPART_OVERHEAD,
        openapi_config=OpenAPIConfig(
            title="Smart YouTube Bookmarks",
            version="0.1.0",
            description=PROGRESS_SOCKET_DOC,
            openapi_router=docs_router(),
            render_plugins=[OfflineSwaggerUI()],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{"BearerToken": []}],
        ),
        logging_config=litestar_logging_config(settings),
        debug=settings.debug,
    )


def create_app_from_env() -> Litestar:
    """Zero-argument factory for `uvicorn --factory` (what `bookmarks run` serves): reads the environment
    once, here."""
    return create_app(Settings.from_env())
