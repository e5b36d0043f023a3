"""`/api/jobs`: state, history, cancel, retry; and retrying failed videos by list or by choice."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from app.api.deps import CurrentUser, DbSession, Queue
from app.api.errors import error_responses
from app.api.lists import Limit, Offset
from app.api.schemas import JobOut, Page, RetryOut, RetryVideos, StrictJSONBody
from app.services import jobs as job_service
from app.services import lists as list_service


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
        outcome: Annotated[
            job_service.Outcome | None,
            QueryParameter(description="Only finished jobs that ended so (the job history's filter)"),
        ] = None,
        list_id: FromQuery[UUID | None] = None,
    ) -> Page[JobOut]:
        """Newest first."""
        rows, total = await job_service.page_jobs(
            db_session, user.id, state=job_state, outcome=outcome, list_id=list_id, limit=limit, offset=offset
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
        """A queued job, or one waiting between attempts, ends at once; a running job stops between
        batches (its terminal event says when)."""
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
        """A new job for this job's failed and cancelled videos and those a job-level stop left pending."""
        job = await job_service.create_retry(db_session, user.id, job_id)
        await db_session.commit()
        await job_queue.enqueue(job.id)
        return JobOut.of(job)


class RetryController(Controller):
    """Retry any time: what failed, by list or by choice, long after its job's card is gone."""

    tags = ["jobs"]

    @post(
        "/api/lists/{list_id:uuid}/retry-failed",
        operation_id="retryFailedOfList",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409),
    )
    async def retry_failed_of_list(
        self, db_session: DbSession, user: CurrentUser, job_queue: Queue, list_id: FromPath[UUID]
    ) -> JobOut:
        """Every failed video of the list, in a new job (409 when none failed)."""
        await list_service.get_owned_list(db_session, user.id, list_id, lock=True)
        job = await job_service.retry_failed_of_list(db_session, user.id, list_id)
        await db_session.commit()
        await job_queue.enqueue(job.id)
        return JobOut.of(job)

    @post(
        "/api/videos/retry",
        operation_id="retryVideos",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409, 413),
    )
    async def retry_videos(
        self, db_session: DbSession, user: CurrentUser, job_queue: Queue, data: StrictJSONBody[RetryVideos]
    ) -> RetryOut:
        """The chosen failed or cancelled videos, in a new job per list (404 if any id is not yours)."""
        jobs = await job_service.retry_videos(db_session, user.id, data.ids)
        await db_session.commit()
        for job in jobs:
            await job_queue.enqueue(job.id)
        return RetryOut(jobs=[JobOut.of(job) for job in jobs])
