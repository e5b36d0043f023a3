"""The tables (docs/design.md, "Data"), declared once for SQLAlchemy and Alembic.

Triggers and functions are not visible to SQLAlchemy: their current definitions are declared in
`db/sql/progress_triggers.sql` and `db/sql/auth_triggers.sql`, and each migration that changes them
carries its own frozen copy.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import DefaultBase, UUIDv7AuditBase, UUIDv7Base
from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

metadata = UUIDv7AuditBase.metadata

SOURCE_MAX = 200
"""Bound on `jobs.source` (a file name is user input)."""
MESSAGE_MAX = 500
"""Bound on `jobs.message` / event `message`, so a NOTIFY payload always fits (docs/design.md)."""
ERROR_MAX = 1000
"""Bound on error texts (`videos.error`, `jobs.last_error`, event `error`)."""


class VideoStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    """Was ready; a refresh found it gone, private or blocked. Its metadata is kept."""


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    """Holds no worker until `next_attempt_at` (the daily YouTube quota is spent); then it resumes."""
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES


class JobKind(enum.StrEnum):
    IMPORT = "import"
    ADD = "add"
    RETRY = "retry"
    REFRESH = "refresh"
    """Checks a list's videos again: what changed, what is gone, what came back (workers/refresh.py)."""


class RefreshSchedule(enum.StrEnum):
    OFF = "off"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


TERMINAL_JOB_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED}
)


def _check_in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class User(UUIDv7AuditBase):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    """Operators may open the queue console at /saq (every job of every user)."""


class ApiToken(UUIDv7Base):
    __tablename__ = "api_tokens"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """None: valid until revoked. Open sockets close when it passes (app/live/hub.py)."""


class BookmarkList(UUIDv7AuditBase):
    __tablename__ = "bookmark_lists"
    __table_args__ = (
        CheckConstraint(_check_in("refresh_schedule", RefreshSchedule), name="refresh_schedule"),
        # Serves the scheduled-refresh cron.
        Index(
            "ix_bookmark_lists_next_refresh_at",
            "next_refresh_at",
            postgresql_where=text("next_refresh_at IS NOT NULL"),
        ),
    )

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    refresh_schedule: Mapped[str] = mapped_column(
        String(16), default=RefreshSchedule.OFF.value, server_default=RefreshSchedule.OFF.value
    )
    """How often a cron checks the list's videos again (RefreshSchedule)."""
    next_refresh_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When the scheduled check is due (null: no schedule)."""


class Video(UUIDv7AuditBase):
    __tablename__ = "videos"
    __table_args__ = (
        UniqueConstraint("list_id", "youtube_id", name="uq_videos_list_youtube_id"),
        CheckConstraint(_check_in("status", VideoStatus), name="status"),
        # Serves "the next pending videos of a job, in order" as an index range scan.
        Index("ix_videos_job_status", "job_id", "status", "id"),
        Index("ix_videos_list_created", "list_id", "created_at"),
        # Serves a refresh's walk through a list's videos in id order (a keyset).
        Index("ix_videos_list_id", "list_id", "id"),
    )

    list_id: Mapped[UUID] = mapped_column(ForeignKey("bookmark_lists.id", ondelete="CASCADE"))
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    youtube_id: Mapped[str] = mapped_column(String(11))
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.PENDING.value)
    title: Mapped[str | None] = mapped_column(Text)
    channel_title: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    published_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    view_count: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(ERROR_MAX))
    """Why it is not ready: a failed video's fetch error, an unavailable one's reason from YouTube."""
    job_id: Mapped[UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    """The job that fetched (or is to fetch) its metadata; a refresh does not take videos over."""
    checked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When a refresh last had YouTube's answer about it (null: never checked since it was fetched)."""
    unavailable_since: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When a refresh first found it gone, private or blocked (null unless `unavailable`)."""


class Job(UUIDv7Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_check_in("status", JobStatus), name="status"),
        CheckConstraint("processed >= 0 AND failed >= 0 AND processed <= total", name="counts"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        # Serves the automatic-retry cron and the waits between attempts.
        Index(
            "ix_jobs_next_attempt_at", "next_attempt_at", postgresql_where=text("next_attempt_at IS NOT NULL")
        ),
    )

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    list_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("bookmark_lists.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    """What the job does: `import`, `add`, `retry`, `refresh` (JobKind)."""
    source: Mapped[str | None] = mapped_column(String(SOURCE_MAX))
    """What a person recognises the job by: a file name, "12 pasted links", "retry of …"."""
    upload_id: Mapped[UUID | None] = mapped_column()
    """Shared by the jobs of one upload that filled several lists (a Google Takeout archive)."""
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.QUEUED.value)
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int | None] = mapped_column(Integer)
    """Refresh only (null for other kinds): videos whose title or channel name changed."""
    gone: Mapped[int | None] = mapped_column(Integer)
    """Refresh only: videos found gone, private or blocked (they became `unavailable`)."""
    returned: Mapped[int | None] = mapped_column(Integer)
    """Refresh only: `unavailable` videos found available again (they became `ready`)."""
    refresh_after: Mapped[UUID | None] = mapped_column()
    """Refresh only: the last video (by id) whose check is committed; a rerun continues after it."""
    stale_before: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """Refresh only: it checks the list's videos not checked since this moment (a retry keeps its
    original's, so it checks only what that one did not)."""
    message: Mapped[str | None] = mapped_column(String(MESSAGE_MAX))
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX))
    rate: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[int | None] = mapped_column(Integer)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Runs since the job last committed progress; bounded (workers/processing.py, JOB_RETRY_DELAYS_S)."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """Running: it waits for its next attempt until then. Failed: its next automatic retry is due then."""
    auto_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many automatic retries led to this job (0 for a person's own job)."""
    retry_of: Mapped[UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """Touched by the worker running the job; a running job whose touch is old is stalled."""
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class ProgressEventRow(DefaultBase):
    """One row per progress event; `seq` is assigned by the `progress_events_assign_seq` trigger."""

    __tablename__ = "progress_events"
    __table_args__ = (
        UniqueConstraint("user_id", "seq", name="uq_progress_events_user_seq"),
        Index("ix_progress_events_job_seq", "job_id", "seq"),
        Index("ix_progress_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # No foreign key to jobs: events are history and are pruned by retention, independently of jobs.
    job_id: Mapped[UUID] = mapped_column()
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    data: Mapped[dict[str, Any]] = mapped_column(JsonB)


class YouTubeQuotaDay(DefaultBase):
    """Data API units spent on one day (Pacific time, when Google resets quotas), by every worker."""

    __tablename__ = "youtube_quota"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    units: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ProgressStream(DefaultBase):
    """The per-user cursor whose row lock makes `seq` commit-ordered."""

    __tablename__ = "progress_streams"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
