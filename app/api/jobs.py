"""`/api/jobs`: state, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from app.api.deps import CurrentUser, DbSession, Queue
from app.api.errors import error_responses
from app.api.lists import Limit, Offset
from app.api.schemas import JobOut, Page
from app.services import jobs as job_service


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @get("/", operation_id="listJobs", responses=error_responses())
    async def list_jobs(
        self,
        db_session: DbSession,
        user: CurrentUser,
        limit: Limit = 100,
        offset: Offset = 0,
        job_state: Annotated[Literal["active", "finished"] | None, QueryParameter(name="state")] = None,
        list_id: FromQuery[UUID | None] = None,
    ) -> Page[JobOut]:
        rows, total = await job_service.page_jobs(
            db_session, user.id, state=job_state, list_id=list_id, limit=limit, offset=offset
        )
        return Page(items=[JobOut.of(row) for row in rows], total=total, limit=limit, offset=offset)

    @get("/{job_id:uuid}", operation_id="getJob", responses=error_responses(404))
    async def get_job(self, db_session: DbSession, user: CurrentUser, job_id: FromPath[UUID]) -> JobOut:
        return JobOut.of(await job_service.get_owned_job(db_session, user.id, job_id))

    @post(
        "/{job_id:uuid}/cancel",
        operation_id="cancelJob",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409),
    )
    async def cancel_job(self, db_session: DbSession, user: CurrentUser, job_id: FromPath[UUID]) -> JobOut:
        """A queued job ends at once; a running job stops between batches (its terminal event says when)."""
        job = await job_service.request_cancel(db_session, user.id, job_id)
        await db_session.commit()
        return JobOut.of(job)

    @post(
        "/{job_id:uuid}/retry",
        operation_id="retryJob",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409),
    )
    async def retry_job(
        self, db_session: DbSession, user: CurrentUser, job_queue: Queue, job_id: FromPath[UUID]
    ) -> JobOut:
        job = await job_service.create_retry(db_session, user.id, job_id)
        await db_session.commit()
        await job_queue.enqueue(job.id)
        return JobOut.of(job)
