"""Named dependencies of the route handlers, and their providers (registered in `app.asgi.create_app`)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.live.store import EventStore
from app.runtime import Runtime
from app.settings import Settings
from db.models import User
from workers.queue import JobQueue

CurrentUser: TypeAlias = NamedDependency[User]
DbSession: TypeAlias = NamedDependency[AsyncSession]
AppSettings: TypeAlias = NamedDependency[Settings]
AppRuntime: TypeAlias = NamedDependency[Runtime]
Queue: TypeAlias = NamedDependency[JobQueue]
Events: TypeAlias = NamedDependency[EventStore]


def provide_job_queue(runtime: AppRuntime) -> JobQueue:
    return runtime.job_queue


def provide_event_store(runtime: AppRuntime) -> EventStore:
    return runtime.event_store
