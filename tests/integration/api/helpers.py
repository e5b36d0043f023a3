"""Small helpers shared by the HTTP API tests: make lists and imports through the API, read the tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Video, VideoStatus
from testkit.accounts import Account

Client = AsyncTestClient[Litestar]
Sessions = async_sessionmaker[AsyncSession]

WRITTEN_TABLES = ("bookmark_lists", "videos", "jobs", "progress_events", "saq_jobs")
"""Everything a request of the API can write (besides tokens' last_used_at)."""


async def create_list(client: Client, account: Account, name: str = "Music") -> dict[str, Any]:
    response = await client.post("/api/lists", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def post_import(
    client: Client,
    account: Account,
    list_id: str,
    body: str | bytes,
    content_type: str = "text/plain",
) -> httpx.Response:
    return await client.post(
        f"/api/lists/{list_id}/imports",
        content=body.encode() if isinstance(body, str) else body,
        headers={**account.headers, "Content-Type": content_type},
    )


async def import_ids(client: Client, account: Account, list_id: str, ids: Iterable[str]) -> dict[str, Any]:
    """Import bare video ids; returns the 202 body."""
    response = await post_import(client, account, list_id, "\n".join(ids))
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def count_rows(sessions: Sessions, tables: Iterable[str] = WRITTEN_TABLES) -> dict[str, int]:
    async with sessions() as session:
        return {
            table: int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
            for table in tables
        }


async def insert_videos(
    sessions: Sessions,
    account: Account,
    list_id: str,
    rows: Iterable[tuple[str, str | None]],
    status: VideoStatus = VideoStatus.READY,
    channel_title: str | None = None,
) -> list[UUID]:
    """Insert videos straight into the table, as a finished worker would have left them."""
    videos = [
        Video(
            list_id=UUID(list_id),
            user_id=account.user_id,
            youtube_id=youtube_id,
            status=status.value,
            title=title,
            channel_title=channel_title,
        )
        for youtube_id, title in rows
    ]
    async with sessions() as session:
        session.add_all(videos)
        await session.commit()
    return [video.id for video in videos]


async def fetch_all(sessions: Sessions, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with sessions() as session:
        result = await session.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]
