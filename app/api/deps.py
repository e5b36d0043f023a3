"""Named dependencies of the route handlers (provided in `app.asgi.create_app`)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.live.store import EventStore
from app.settings import Settings
from db.models import User
from workers.queue import JobQueue

CurrentUser: TypeAlias = NamedDependency[User]
DbSession: TypeAlias = NamedDependency[AsyncSession]
AppSettings: TypeAlias = NamedDependency[Settings]
Queue: TypeAlias = NamedDependency[JobQueue]
Events: TypeAlias = NamedDependency[EventStore]
