"""Request and response bodies of the HTTP API (msgspec structs; OpenAPI is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeAlias, TypeVar
from uuid import UUID

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body

from db.events import ProgressEvent, progress_percent
from db.models import BookmarkList, Job, RefreshSchedule, Video

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
    """An operator: may open the queue console at /saq/."""
    metadata_source: Literal["youtube_data_api", "oembed"]
    """Where this server gets video metadata. `oembed` (no `YOUTUBE_API_KEY`): title, channel and
    thumbnail only; duration, publish date and views stay empty."""


class ListCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Description | None = None


class ListUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    refresh_schedule: RefreshSchedule | msgspec.UnsetType = msgspec.UNSET
    """How often the list's videos are checked again by a cron (`off`, `weekly`, `monthly`)."""


class ListOut(msgspec.Struct):
    id: UUID
    name: str
    description: str | None
    video_count: int
    refresh_schedule: str
    """`off`, `weekly` or `monthly`: how often a cron checks the list's videos again."""
    next_refresh_at: datetime | None
    """When the next scheduled check is due (null without a schedule)."""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: BookmarkList, video_count: int) -> ListOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            video_count=video_count,
            refresh_schedule=row.refresh_schedule,
            next_refresh_at=row.next_refresh_at,
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
    """Why it is not ready: a failed video's fetch error, an unavailable one's reason."""
    job_id: UUID | None
    checked_at: datetime | None
    """When an availability check last had YouTube's answer about it."""
    unavailable_since: datetime | None
    """Set while `unavailable`: when a check first found it gone, private or blocked."""
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
            checked_at=row.checked_at,
            unavailable_since=row.unavailable_since,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class JobOut(msgspec.Struct):
    id: UUID
    list_id: UUID | None
    kind: str
    """`import`, `add`, `retry` or `refresh`."""
    source: str | None
    """What a person recognises the job by: a file name, "12 pasted links", "retry of …"."""
    upload_id: UUID | None
    """Shared by the jobs of one upload that filled several lists (a Takeout archive)."""
    status: str
    """`queued`, `running`, `waiting` (for the YouTube quota, until `next_attempt_at`), or how it ended."""
    total: int
    processed: int
    failed: int
    changed: int | None
    """Refresh only (else null): videos whose title or channel name changed."""
    gone: int | None
    """Refresh only: videos found gone, private or blocked."""
    returned: int | None
    """Refresh only: unavailable videos that are back."""
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
    """Running: when its next attempt starts after a failed one. Waiting: when the quota resets and it
    resumes. Failed: when it is retried automatically."""
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
            upload_id=row.upload_id,
            status=row.status,
            total=row.total,
            processed=row.processed,
            failed=row.failed,
            changed=row.changed,
            gone=row.gone,
            returned=row.returned,
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


class ImportLines(msgspec.Struct):
    """Every line of the input, counted once: the other five add up to `total`."""

    total: int
    accepted: int
    """Lines whose video the job fetches: new to the list, or in it but failed or cancelled (`retried`)."""
    duplicates: int
    """Lines whose video was already in the list, or earlier in the input."""
    invalid: int
    """Lines refused, each with its reason in `invalid` (the first 1,000 of them)."""
    blank: int
    """Empty lines, and lines of nothing but separators (`;;;`, a spreadsheet's empty row)."""
    skipped: int
    """Header rows, `#` comments, Takeout's playlist details, and the further lines of a cell that spans
    several."""


class ImportResult(msgspec.Struct):
    job: JobOut | None
    """None when every valid video was already in the list: there is nothing to fetch."""
    accepted: int
    """Videos the job fetches, `retried` included."""
    duplicates: int
    invalid: list[InvalidLineOut]
    lines: ImportLines
    retried: int
    """Of `accepted`, the videos already in the list that had failed or been cancelled: the job fetches
    them again (their lines count as `lines.accepted`, not as duplicates)."""


class TakeoutListOut(msgspec.Struct):
    """One list of a Takeout import: what its playlist(s) brought."""

    list_id: UUID
    name: str
    created: bool
    """A new list; false: the playlist went into your existing list of that name."""
    job: JobOut | None
    """The job fetching its new videos; null when every video was already there."""
    accepted: int
    duplicates: int
    invalid: int
    """Rows of its CSV that hold no video (the per-line reasons are not repeated here)."""
    files: list[str]
    """The archive's CSV files it was made from."""


class SkippedFileOut(msgspec.Struct):
    file: str
    reason: str


class TakeoutResult(msgspec.Struct):
    upload_id: UUID
    """Shared by the jobs of this upload (`upload_id` on each job and progress event)."""
    source: str
    """The archive's file name: every job of the upload has it as its source."""
    lists: list[TakeoutListOut]
    skipped: list[SkippedFileOut]
    """Playlist files that hold no video (no list is made for them)."""


class ProgressHistory(msgspec.Struct):
    """A page of progress events in seq order; `next_after_seq` is null on the last page.

    For the OpenAPI document only: the handlers splice the stored JSON of the events, never re-encoding.
    """

    events: list[ProgressEvent]
    next_after_seq: int | None
