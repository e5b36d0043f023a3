"""Videos of a list: browse, add one, delete, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.services import jobs as job_service
from app.services.errors import Conflict, NotFound
from app.services.lists import get_owned_list
from db.models import JobKind, Video, VideoStatus
from db.queries import queries

EXPORT_COLUMNS = (
    "youtube_id", "url", "status", "title", "channel_title", "channel_id", "duration_s", "published_at",
    "view_count", "thumbnail_url", "error", "added_at",
)  # fmt: skip
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


async def page_videos(
    session: AsyncSession,
    user_id: UUID,
    list_id: UUID,
    *,
    status: VideoStatus | None,
    query: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Video], int]:
    await get_owned_list(session, user_id, list_id)
    conditions = [Video.list_id == list_id, Video.user_id == user_id]
    if status is not None:
        conditions.append(Video.status == status.value)
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                Video.title.ilike(pattern, escape="\\"),
                Video.channel_title.ilike(pattern, escape="\\"),
                Video.youtube_id == query.strip(),
            )
        )
    total = await session.scalar(select(func.count()).select_from(Video).where(*conditions)) or 0
    rows = await session.scalars(
        select(Video).where(*conditions).order_by(Video.created_at, Video.id).limit(limit).offset(offset)
    )
    return list(rows), total


async def insert_pending_videos(
    session: AsyncSession, user_id: UUID, list_id: UUID, youtube_ids: list[str], job_id: UUID | None
) -> tuple[int, int]:
    """Insert the ids not yet in the list as pending, and take those that failed or were cancelled into
    the job again (a re-import retries them); returns (added, retried).

    One statement over two arrays, whatever the count: a VALUES list would hit Postgres's limit of
    32,767 bind parameters at a few thousand rows.
    """
    connection = await session.connection()
    result = await connection.exec_driver_sql(
        queries["insert_pending_videos"],
        (list_id, user_id, job_id, [uuid7() for _ in youtube_ids], youtube_ids),
    )
    added, retried = result.one()
    return int(added), int(retried)


async def add_video(session: AsyncSession, user_id: UUID, list_id: UUID, youtube_id: str) -> Video:
    """A new pending video with a one-video job; adding one that failed or was cancelled retries it."""
    # The list lock serialises adds and imports into one list, so a race answers 409, not a 500.
    await get_owned_list(session, user_id, list_id, lock=True)
    # One video is a one-video job, so its metadata arrives the same way as an import's, live.
    job = await job_service.create_job(session, user_id, list_id, JobKind.ADD, "1 video added")
    added, retried = await insert_pending_videos(session, user_id, list_id, [youtube_id], job.id)
    video = await session.scalar(
        select(Video)
        .where(Video.list_id == list_id, Video.youtube_id == youtube_id)
        .execution_options(populate_existing=True)
    )
    assert video is not None
    if not (added or retried):
        raise Conflict(f"video {youtube_id} is already in this list", extra={"video_id": str(video.id)})
    job.source = "1 video added" if added else "1 video added again"
    job.total = 1
    job.message = "Queued 1 video"
    await session.flush()
    return video


async def get_owned_video(session: AsyncSession, user_id: UUID, video_id: UUID) -> Video:
    video = await session.scalar(select(Video).where(Video.id == video_id, Video.user_id == user_id))
    if video is None:
        raise NotFound(f"video {video_id} not found")
    return video


async def delete_video(session: AsyncSession, user_id: UUID, video_id: UUID) -> None:
    video = await get_owned_video(session, user_id, video_id)
    await session.delete(video)
    await session.flush()
    if video.job_id is not None:
        # The job's counts are recomputed from its videos: deleting one changes its total.
        await job_service.refresh_counts(session, video.job_id)


def neutralise_formula(value: str) -> str:
    """Spreadsheet apps run cells starting with these characters as formulas (CSV injection)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def export_row(video: Video) -> list[str]:
    values = [
        video.youtube_id,
        f"https://www.youtube.com/watch?v={video.youtube_id}",
        video.status,
        video.title or "",
        video.channel_title or "",
        video.channel_id or "",
        "" if video.duration_s is None else str(video.duration_s),
        video.published_at.isoformat() if video.published_at else "",
        "" if video.view_count is None else str(video.view_count),
        video.thumbnail_url or "",
        video.error or "",
        video.created_at.isoformat(),
    ]
    return [neutralise_formula(v) for v in values]


def render_csv(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


async def export_csv(session: AsyncSession, user_id: UUID, list_id: UUID) -> str:
    await get_owned_list(session, user_id, list_id)
    videos = await session.scalars(
        select(Video)
        .where(Video.list_id == list_id, Video.user_id == user_id)
        .order_by(Video.created_at, Video.id)
    )
    return render_csv(export_row(v) for v in videos)
