"""Request and response bodies of the HTTP API (msgspec structs; OpenAPI is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeAlias, TypeVar
from uuid import UUID

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body

from db.events import ProgressEvent, progress_percent
from db.models import BookmarkList, Job, Video

T = TypeVar("T")

MAX_SAFE_INT = 2**53 - 1
"""Upper bound of offsets and seqs in queries: the largest integer a JSON (JavaScript) client holds
exactly, and well inside Postgres' bigint, past which a query failed with a 500."""
NO_NUL = r"^[^\x00]*$"
"""Postgres text cannot hold NUL: a string with one is refused with 400 before it reaches a query."""

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")]
"""At least one visible character (stored stripped), no NUL."""
Description = Annotated[str, msgspec.Meta(max_length=5000, pattern=NO_NUL)]

StrictJSONBody: TypeAlias = Annotated[
    T, Body(media_type=RequestEncodingType.JSON, schema_extra={"additionalProperties": False})
]
"""A JSON body of a `forbid_unknown_fields` struct: documents that unknown fields are refused with 400
(Litestar's schema leaves `additionalProperties` open, so clients would think extras are ignored)."""


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Me(msgspec.Struct):
    id: UUID
    email: str
    created_at: datetime
    is_admin: bool
    """An operator: may open the queue console at /saq."""


class ListCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Description | None = None


class ListUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class ListOut(msgspec.Struct):
    id: UUID
    name: str
    description: str | None
    video_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: BookmarkList, video_count: int) -> ListOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            video_count=video_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class VideoCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=2000,
            description="Any form of YouTube video link, or a bare 11-character video id",
            examples=["https://www.youtube.com/watch?v=dQw4w9WgXcQ"],
        ),
    ]


class VideoOut(msgspec.Struct):
    id: UUID
    list_id: UUID
    youtube_id: str
    url: str
    status: str
    title: str | None
    channel_title: str | None
    channel_id: str | None
    duration_s: int | None
    published_at: datetime | None
    thumbnail_url: str | None
    view_count: int | None
    error: str | None
    job_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Video) -> VideoOut:
        return cls(
            id=row.id,
            list_id=row.list_id,
            youtube_id=row.youtube_id,
            url=f"https://www.youtube.com/watch?v={row.youtube_id}",
            status=row.status,
            title=row.title,
            channel_title=row.channel_title,
            channel_id=row.channel_id,
            duration_s=row.duration_s,
            published_at=row.published_at,
            thumbnail_url=row.thumbnail_url,
            view_count=row.view_count,
            error=row.error,
            job_id=row.job_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class JobOut(msgspec.Struct):
    id: UUID
    list_id: UUID | None
    kind: str
    """`import`, `add` or `retry`."""
    source: str | None
    """What a person recognises the job by: a file name, "12 pasted links", "retry of …"."""
    status: str
    total: int
    processed: int
    failed: int
    progress: float
    message: str | None
    last_error: str | None
    rate: float | None
    eta_s: int | None
    last_seq: int | None
    cancel_requested: bool
    attempts: int
    """Runs since the job last made progress (bounded; then it ends `failed`)."""
    next_attempt_at: datetime | None
    """Running: when its next attempt starts after a failed one. Failed: when it is retried automatically."""
    retry_of: UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> JobOut:
        return cls(
            id=row.id,
            list_id=row.list_id,
            kind=row.kind,
            source=row.source,
            status=row.status,
            total=row.total,
            processed=row.processed,
            failed=row.failed,
            progress=progress_percent(row.processed, row.total),
            message=row.message,
            last_error=row.last_error,
            rate=row.rate,
            eta_s=row.eta_s,
            last_seq=row.last_seq,
            cancel_requested=row.cancel_requested,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            retry_of=row.retry_of,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class RetryVideos(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=1000)]
    """Videos (failed or cancelled) to fetch again, in a new job per list."""


class RetryOut(msgspec.Struct):
    jobs: list[JobOut]
    """One new job per list the chosen videos are in."""


class InvalidLineOut(msgspec.Struct):
    line: int
    value: str
    reason: str


class ImportResult(msgspec.Struct):
    job: JobOut | None
    """None when every valid video was already in the list: there is nothing to fetch."""
    accepted: int
    """Videos the job fetches, `retried` included."""
    duplicates: int
    invalid: list[InvalidLineOut]
    retried: int = 0
    """Videos already in the list that had failed or been cancelled: the job fetches them again."""


class ProgressHistory(msgspec.Struct):
    """A page of progress events in seq order; `next_after_seq` is null on the last page.

    For the OpenAPI document only: the handlers splice the stored JSON of the events, never re-encoding.
    """

    events: list[ProgressEvent]
    next_after_seq: int | None
