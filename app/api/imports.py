"""`POST /api/lists/{id}/imports`: a CSV file, a Takeout export or pasted links (DESIGN.md section 7)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, post
from litestar.datastructures import UploadFile
from litestar.exceptions import TooManyRequestsException
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from app.api.deps import AppSettings, CurrentUser, DbSession, Queue
from app.api.schemas import ImportResult, InvalidLineOut, JobOut
from app.ratelimit import Limits
from app.services import imports as import_service
from app.services.errors import InvalidInput, TooLarge

MULTIPART_OVERHEAD = 64 * 1024


async def read_import_body(request: Request[Any, Any, Any], max_bytes: int) -> bytes:
    """The raw bytes of the import: the uploaded file of a multipart form, or the body itself."""
    if request.content_type[0] != "multipart/form-data":
        return await request.body()
    form = await request.form()
    uploads = [value for value in form.values() if isinstance(value, UploadFile)]
    if len(uploads) != 1:
        texts = [value for value in form.values() if isinstance(value, str) and value.strip()]
        if not uploads and len(texts) == 1:
            return texts[0].encode()
        raise InvalidInput("send exactly one file (or one text field) in the multipart form")
    data = await uploads[0].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"the file is larger than the limit of {max_bytes} bytes")
    return data


class ImportController(Controller):
    tags = ["imports"]

    @post(
        "/api/lists/{list_id:uuid}/imports",
        operation_id="createImport",
        status_code=HTTP_202_ACCEPTED,
    )
    async def create_import(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        user: CurrentUser,
        settings: AppSettings,
        job_queue: Queue,
        list_id: FromPath[UUID],
    ) -> Response[ImportResult]:
        limits: Limits = request.app.state.limits
        if not limits.imports.allow(str(user.id)):
            raise TooManyRequestsException(
                f"at most {settings.imports_per_minute} imports a minute; try again shortly",
                headers={"Retry-After": str(limits.imports.retry_after_s(str(user.id)))},
            )
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > settings.import_max_bytes + MULTIPART_OVERHEAD
        ):
            raise TooLarge(f"the import is {declared} bytes; the limit is {settings.import_max_bytes} bytes")
        data = await read_import_body(request, settings.import_max_bytes)
        # Parsing 50,000 rows takes up to a second of CPU: keep it off the event loop.
        parsed = await asyncio.to_thread(
            import_service.parse_or_reject,
            data,
            max_bytes=settings.import_max_bytes,
            max_rows=settings.import_max_rows,
        )
        outcome = await import_service.create_import(db_session, user.id, list_id, parsed)
        # Commit before enqueueing: SAQ writes on its own connections (PITFALLS.md).
        await db_session.commit()
        if outcome.job is not None:
            await job_queue.enqueue(outcome.job.id)
        result = ImportResult(
            job=None if outcome.job is None else JobOut.of(outcome.job),
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            invalid=[InvalidLineOut(line=i.line, value=i.value, reason=i.reason) for i in outcome.invalid],
        )
        return Response(result, status_code=HTTP_202_ACCEPTED if outcome.job else HTTP_200_OK)
