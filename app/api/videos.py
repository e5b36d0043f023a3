"""Videos of a list: browse, add one by URL, delete, export as CSV."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.status_codes import HTTP_200_OK

from app.api.deps import CurrentUser, DbSession, Queue
from app.api.errors import error_responses
from app.api.lists import Limit, Offset
from app.api.schemas import NO_NUL, Page, StrictJSONBody, VideoCreate, VideoOut
from app.imports.parsing import InvalidVideoRef, parse_video_ref
from app.services import videos as video_service
from app.services.errors import InvalidInput
from db.models import VideoStatus


class VideoController(Controller):
    tags = ["videos"]

    @get("/api/lists/{list_id:uuid}/videos", operation_id="listVideos", responses=error_responses(404))
    async def list_videos(
        self,
        db_session: DbSession,
        user: CurrentUser,
        list_id: FromPath[UUID],
        limit: Limit = 100,
        offset: Offset = 0,
        status: FromQuery[VideoStatus | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)] = None,
    ) -> Page[VideoOut]:
        rows, total = await video_service.page_videos(
            db_session, user.id, list_id, status=status, query=q, limit=limit, offset=offset
        )
        return Page(items=[VideoOut.of(row) for row in rows], total=total, limit=limit, offset=offset)

    @post(
        "/api/lists/{list_id:uuid}/videos",
        operation_id="addVideo",
        responses=error_responses(404, 409, 413, 422),
    )
    async def add_video(
        self,
        db_session: DbSession,
        user: CurrentUser,
        job_queue: Queue,
        list_id: FromPath[UUID],
        data: StrictJSONBody[VideoCreate],
    ) -> VideoOut:
        """Adds one video as pending, with a one-video job that fetches its metadata."""
        try:
            youtube_id = parse_video_ref(data.url)
        except InvalidVideoRef as exc:
            raise InvalidInput(str(exc), extra={"url": data.url[:200]}) from exc
        video = await video_service.add_video(db_session, user.id, list_id, youtube_id)
        await db_session.commit()
        assert video.job_id is not None
        await job_queue.enqueue(video.job_id)
        return VideoOut.of(video)

    @delete("/api/videos/{video_id:uuid}", operation_id="deleteVideo", responses=error_responses(404))
    async def delete_video(self, db_session: DbSession, user: CurrentUser, video_id: FromPath[UUID]) -> None:
        await video_service.delete_video(db_session, user.id, video_id)
        await db_session.commit()

    @get(
        "/api/lists/{list_id:uuid}/export.csv",
        operation_id="exportList",
        # No `media_type="text/csv"` on the handler: Litestar gives error answers the handler's media type,
        # which sent JSON errors labelled text/csv. The CSV answer sets its own type and is documented here.
        responses={
            HTTP_200_OK: ResponseSpec(
                data_container=str,
                media_type="text/csv",
                description="The list's videos as CSV (UTF-8, a header row)",
                generate_examples=False,
            ),
            **error_responses(404),
        },
    )
    async def export_csv(
        self, db_session: DbSession, user: CurrentUser, list_id: FromPath[UUID]
    ) -> Response[str]:
        body = await video_service.export_csv(db_session, user.id, list_id)
        return Response(
            body,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="list-{list_id}.csv"'},
        )
