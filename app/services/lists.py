"""Bookmark lists, always scoped to their owner."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.services import jobs as job_service
from app.services.errors import NotFound
from db.models import BookmarkList, RefreshSchedule, Video


async def get_owned_list(
    session: AsyncSession, user_id: UUID, list_id: UUID, *, lock: bool = False
) -> BookmarkList:
    query = select(BookmarkList).where(BookmarkList.id == list_id, BookmarkList.user_id == user_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"list {list_id} not found")
    return row


async def count_videos(session: AsyncSession, list_ids: list[UUID]) -> dict[UUID, int]:
    if not list_ids:
        return {}
    rows = await session.execute(
        select(Video.list_id, func.count()).where(Video.list_id.in_(list_ids)).group_by(Video.list_id)
    )
    return dict(rows.tuples().all())


async def page_lists(
    session: AsyncSession, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[BookmarkList], int]:
    mine = BookmarkList.user_id == user_id
    total = await session.scalar(select(func.count()).select_from(BookmarkList).where(mine)) or 0
    rows = await session.scalars(
        select(BookmarkList)
        .where(mine)
        .order_by(BookmarkList.created_at, BookmarkList.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def create_list(
    session: AsyncSession, user_id: UUID, name: str, description: str | None
) -> BookmarkList:
    row = BookmarkList(user_id=user_id, name=name, description=description)
    session.add(row)
    await session.flush()
    return row


async def update_list(
    session: AsyncSession,
    user_id: UUID,
    list_id: UUID,
    *,
    name: str | msgspec.UnsetType = msgspec.UNSET,
    description: str | msgspec.UnsetType | None = msgspec.UNSET,
    refresh_schedule: RefreshSchedule | msgspec.UnsetType = msgspec.UNSET,
) -> BookmarkList:
    row = await get_owned_list(session, user_id, list_id)
    if name is not msgspec.UNSET:
        row.name = name
    if description is not msgspec.UNSET:
        row.description = description
    if refresh_schedule is not msgspec.UNSET and refresh_schedule != row.refresh_schedule:
        # A new schedule counts from now: the first scheduled check comes one interval later.
        row.refresh_schedule = refresh_schedule.value
        interval = job_service.SCHEDULE_INTERVALS.get(refresh_schedule)
        row.next_refresh_at = None if interval is None else datetime.now(UTC) + interval
    await session.flush()
    return row


async def delete_list(session: AsyncSession, user_id: UUID, list_id: UUID) -> None:
    """Jobs outlive the list (their `list_id` becomes null); running ones are cancelled first."""
    row = await get_owned_list(session, user_id, list_id, lock=True)
    await job_service.request_cancel_for_list(session, user_id, list_id)
    await session.delete(row)
    await session.flush()
