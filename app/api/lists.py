"""`/api/lists`: a user's bookmark lists."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import CurrentUser, DbSession
from app.api.errors import error_responses
from app.api.schemas import MAX_SAFE_INT, ListCreate, ListOut, ListUpdate, Page, StrictJSONBody
from app.services import lists as list_service
from db.models import BookmarkList

Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_SAFE_INT)]


async def list_out(session: AsyncSession, row: BookmarkList) -> ListOut:
    counts = await list_service.count_videos(session, [row.id])
    return ListOut.of(row, counts.get(row.id, 0))


class ListController(Controller):
    path = "/api/lists"
    tags = ["lists"]

    @get("/", operation_id="listLists", responses=error_responses())
    async def list_lists(
        self, db_session: DbSession, user: CurrentUser, limit: Limit = 100, offset: Offset = 0
    ) -> Page[ListOut]:
        rows, total = await list_service.page_lists(db_session, user.id, limit=limit, offset=offset)
        counts = await list_service.count_videos(db_session, [row.id for row in rows])
        items = [ListOut.of(row, counts.get(row.id, 0)) for row in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    @post("/", operation_id="createList", responses=error_responses(413))
    async def create_list(
        self, db_session: DbSession, user: CurrentUser, data: StrictJSONBody[ListCreate]
    ) -> ListOut:
        # The schema requires a visible character, so the stripped name is never empty.
        row = await list_service.create_list(db_session, user.id, data.name.strip(), data.description)
        await db_session.commit()
        return ListOut.of(row, 0)

    @get("/{list_id:uuid}", operation_id="getList", responses=error_responses(404))
    async def get_list(self, db_session: DbSession, user: CurrentUser, list_id: FromPath[UUID]) -> ListOut:
        return await list_out(db_session, await list_service.get_owned_list(db_session, user.id, list_id))

    @patch("/{list_id:uuid}", operation_id="updateList", responses=error_responses(404, 413))
    async def update_list(
        self,
        db_session: DbSession,
        user: CurrentUser,
        list_id: FromPath[UUID],
        data: StrictJSONBody[ListUpdate],
    ) -> ListOut:
        row = await list_service.update_list(
            db_session,
            user.id,
            list_id,
            name=data.name if isinstance(data.name, msgspec.UnsetType) else data.name.strip(),
            description=data.description,
            refresh_schedule=data.refresh_schedule,
        )
        result = await list_out(db_session, row)
        await db_session.commit()
        return result

    @delete("/{list_id:uuid}", operation_id="deleteList", responses=error_responses(404))
    async def delete_list(self, db_session: DbSession, user: CurrentUser, list_id: FromPath[UUID]) -> None:
        await list_service.delete_list(db_session, user.id, list_id)
        await db_session.commit()
