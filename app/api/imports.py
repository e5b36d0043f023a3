"""`POST /api/lists/{id}/imports`: a CSV file, a Takeout playlist or pasted links into one list; and
`POST /api/imports/takeout`: a whole Google Takeout archive, a list per playlist (README, "HTTP API")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, post
from litestar.datastructures import UploadFile
from litestar.exceptions import TooManyRequestsException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from app.api.deps import AppRuntime, CurrentUser, DbSession
from app.api.errors import error_responses
from app.api.schemas import (
    ImportLines,
    ImportResult,
    InvalidLineOut,
    JobOut,
    SkippedFileOut,
    TakeoutListOut,
    TakeoutResult,
)
from app.imports.takeout import looks_like_takeout
from app.runtime import Runtime
from app.services import imports as import_service
from app.services.errors import InvalidInput, TooLarge

MULTIPART_OVERHEAD = 64 * 1024
MULTIPART_PART_LIMIT = 100
"""An import form needs one part (a file or a text field); the app's form parser refuses more than this."""
TEXT_BODY = Schema(
    type=OpenAPIType.STRING,
    description="CSV, a Takeout export or one link per line (UTF-8)",
    examples=["url\nhttps://www.youtube.com/watch?v=dQw4w9WgXcQ\nhttps://youtu.be/9bZkp7q19f0\n"],
)


BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def upload_body(form_description: str, **raw: Schema) -> RequestBody:
    """A body the handler reads itself, so Litestar cannot see it: a multipart form with one file, or the
    raw bodies (media type → schema) it also takes."""
    form = Schema(
        type=OpenAPIType.OBJECT, properties={"file": BINARY}, required=["file"], description=form_description
    )
    content = {media: OpenAPIMediaType(schema=schema) for media, schema in raw.items()}
    return RequestBody(
        required=True, content={**content, "multipart/form-data": OpenAPIMediaType(schema=form)}
    )


@dataclass
class ImportOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = upload_body(
            "One file field (any name), or else one non-empty text field",
            **{"text/csv": TEXT_BODY, "text/plain": TEXT_BODY},
        )


@dataclass
class TakeoutOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = upload_body(
            "The Takeout .zip as the form's one file field (any name)", **{"application/zip": BINARY}
        )


@dataclass(frozen=True)
class ImportBody:
    data: bytes
    file_name: str | None = None
    """The uploaded file's name (user input: cleaned before it is shown as the job's source)."""


async def read_import_body(request: Request[Any, Any, Any], max_bytes: int) -> ImportBody:
    """The raw bytes of the import: the uploaded file of a multipart form, or the body itself."""
    try:
        # The whole body first, bounded by the app's request_max_body_size, even for a form. A body sent
        # without Content-Length trips that limit while it is read: here that is our 413 naming the
        # limit, and no half-written upload is left open (Litestar's form parser does not close it).
        body = await request.body()
    except RequestEntityTooLarge:
        raise TooLarge(import_service.too_large_message(None, max_bytes)) from None
    content_type, options = request.content_type
    if content_type != "multipart/form-data":
        return ImportBody(body)
    boundary = options.get("boundary", "").encode("latin-1", "replace")
    parts = body.count(b"--" + boundary) - 1 if boundary else 0
    if parts > MULTIPART_PART_LIMIT:
        raise TooLarge(
            f"the form has {parts:,} parts, more than the {MULTIPART_PART_LIMIT} an import may have:"
            " send one file (or one text field)"
        )
    try:
        form = await request.form()  # parsed from the body read above
    except UnicodeDecodeError:  # Litestar decodes text fields (not files) as UTF-8 and lets this escape
        raise InvalidInput(
            "a text field of the form is not UTF-8; send UTF-8, or the links as a file"
        ) from None
    uploads = [value for value in form.values() if isinstance(value, UploadFile)]
    if len(uploads) != 1:
        texts = [value for value in form.values() if isinstance(value, str) and value.strip()]
        if not uploads and len(texts) == 1:
            return ImportBody(texts[0].encode())
        raise InvalidInput("send exactly one file (or one text field) in the multipart form")
    data = await uploads[0].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(import_service.too_large_message(None, max_bytes))
    return ImportBody(data, uploads[0].filename or None)


class ImportController(Controller):
    tags = ["imports"]

    @post(
        "/api/lists/{list_id:uuid}/imports",
        operation_id="createImport",
        status_code=HTTP_202_ACCEPTED,
        operation_class=ImportOperation,
        responses={
            HTTP_200_OK: ResponseSpec(
                data_container=ImportResult,
                description="Every valid video was already in the list: no job (`job` is null)",
                generate_examples=False,
            ),
            **error_responses(404, 413, 422),
        },
    )
    async def create_import(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        user: CurrentUser,
        runtime: AppRuntime,
        list_id: FromPath[UUID],
    ) -> Response[ImportResult]:
        settings, job_queue = runtime.settings, runtime.job_queue
        body = await admit_import(request, runtime, user.id)
        if looks_like_takeout(body.data):
            raise InvalidInput(
                "this is a Google Takeout archive: import it with “Import a Google Takeout” "
                "(POST /api/imports/takeout), which makes a list of each playlist"
            )
        # Parsing 50,000 rows takes up to a second of CPU: in another process, never on this one's GIL.
        parsed = await import_service.parse_elsewhere_or_reject(
            runtime.import_parser,
            body.data,
            max_bytes=settings.import_max_bytes,
            max_rows=settings.import_max_rows,
        )
        outcome = await import_service.create_import(db_session, user.id, list_id, parsed, body.file_name)
        # Commit before enqueueing: SAQ writes on its own connections (docs/design.md, "Jobs").
        await db_session.commit()
        if outcome.job is not None:
            await job_queue.enqueue(outcome.job.id)
        result = ImportResult(
            job=None if outcome.job is None else JobOut.of(outcome.job),
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            invalid=[InvalidLineOut(line=i.line, value=i.value, reason=i.reason) for i in outcome.invalid],
            lines=ImportLines(**asdict(outcome.lines)),
            retried=outcome.retried,
        )
        return Response(result, status_code=HTTP_202_ACCEPTED if outcome.job else HTTP_200_OK)

    @post(
        "/api/imports/takeout",
        operation_id="importTakeout",
        status_code=HTTP_202_ACCEPTED,
        operation_class=TakeoutOperation,
        responses={
            HTTP_200_OK: ResponseSpec(
                data_container=TakeoutResult,
                description="Every video was already in its list: no job",
                generate_examples=False,
            ),
            # Litestar declares 400 only for handlers with parameters; this one reads its body itself.
            **error_responses(400, 413, 422),
        },
    )
    async def import_takeout(
        self, request: Request[Any, Any, Any], db_session: DbSession, user: CurrentUser, runtime: AppRuntime
    ) -> Response[TakeoutResult]:
        """A whole Google Takeout archive (.zip, or its `YouTube and YouTube Music` folder zipped): each
        playlist (Watch later and Liked videos too) into the list of its name, made if you have none,
        with a job per list; all of them share the answer's `upload_id`. A hostile or damaged archive
        (path traversal, encryption, an archive inside, a zip bomb, members over the limits) is refused
        with the reason, and nothing is written."""
        body = await admit_import(request, runtime, user.id)
        settings = runtime.settings
        parsed = await import_service.parse_takeout_or_reject(
            runtime.import_parser,
            body.data,
            max_bytes=settings.import_max_bytes,
            max_rows=settings.import_max_rows,
        )
        outcome = await import_service.create_takeout_import(db_session, user.id, parsed, body.file_name)
        await db_session.commit()
        for job in outcome.jobs:
            await runtime.job_queue.enqueue(job.id)
        result = TakeoutResult(
            upload_id=outcome.upload_id,
            source=outcome.source,
            lists=[
                TakeoutListOut(
                    list_id=item.target.id,
                    name=item.target.name,
                    created=item.created,
                    job=None if item.outcome.job is None else JobOut.of(item.outcome.job),
                    accepted=item.outcome.accepted,
                    duplicates=item.outcome.duplicates,
                    invalid=item.outcome.lines.invalid,
                    files=item.files,
                )
                for item in outcome.lists
            ],
            skipped=[SkippedFileOut(file=skipped.file, reason=skipped.reason) for skipped in outcome.skipped],
        )
        return Response(result, status_code=HTTP_202_ACCEPTED if outcome.jobs else HTTP_200_OK)


async def admit_import(request: Request[Any, Any, Any], runtime: Runtime, user_id: UUID) -> ImportBody:
    """The import's body once the user's import rate and the size limit let it in (413 and 429 before
    reading a declared oversize body)."""
    settings, limits = runtime.settings, runtime.limits
    if not limits.imports.allow(str(user_id)):
        raise TooManyRequestsException(
            f"at most {settings.imports_per_minute} imports a minute; try again shortly",
            headers={"Retry-After": str(limits.imports.retry_after_s(str(user_id)))},
        )
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and int(declared) > settings.import_max_bytes + MULTIPART_OVERHEAD
    ):
        raise TooLarge(import_service.too_large_message(int(declared), settings.import_max_bytes))
    return await read_import_body(request, settings.import_max_bytes)
