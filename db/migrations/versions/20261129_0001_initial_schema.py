"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 09:31:56.187011
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

from db.queries import queries

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "bookmark_lists",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bookmark_lists_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookmark_lists")),
    )
    op.create_index(op.f("ix_bookmark_lists_user_id"), "bookmark_lists", ["user_id"], unique=False)
    op.create_table(
        "progress_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("job_id", GUID(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_progress_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_events")),
        sa.UniqueConstraint("user_id", "seq", name="uq_progress_events_user_seq"),
    )
    op.create_index("ix_progress_events_created_at", "progress_events", ["created_at"], unique=False)
    op.create_index("ix_progress_events_job_seq", "progress_events", ["job_id", "seq"], unique=False)
    op.create_table(
        "progress_streams",
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_progress_streams_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_progress_streams")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("list_id", GUID(length=16), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Integer(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("finished_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'completed_with_errors', 'failed', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint(
            "processed >= 0 AND failed >= 0 AND processed <= total", name=op.f("ck_jobs_counts")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["bookmark_lists.id"],
            name=op.f("fk_jobs_list_id_bookmark_lists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_list_id"), "jobs", ["list_id"], unique=False)
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at"], unique=False)
    op.create_table(
        "videos",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("list_id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("youtube_id", sa.String(length=11), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("channel_title", sa.Text(), nullable=True),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("published_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("thumbnail_url", sa.Text(), nullable=True),
        sa.Column("view_count", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("job_id", GUID(length=16), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'ready', 'failed', 'cancelled')",
            name=op.f("ck_videos_status"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_videos_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["bookmark_lists.id"],
            name=op.f("fk_videos_list_id_bookmark_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_videos_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("list_id", "youtube_id", name="uq_videos_list_youtube_id"),
    )
    op.create_index("ix_videos_job_status", "videos", ["job_id", "status", "id"], unique=False)
    op.create_index("ix_videos_list_created", "videos", ["list_id", "created_at"], unique=False)
    op.create_index(op.f("ix_videos_user_id"), "videos", ["user_id"], unique=False)
    # Autogenerate never sees functions or triggers: the commit-ordered seq and the NOTIFY (DESIGN.md 3).
    for name in (
        "create_assign_seq_function",
        "create_notify_function",
        "create_assign_seq_trigger",
        "create_notify_trigger",
    ):
        op.execute(queries[name])


def downgrade() -> None:
    for name in (
        "drop_notify_trigger",
        "drop_assign_seq_trigger",
        "drop_notify_function",
        "drop_assign_seq_function",
    ):
        op.execute(queries[name])
    op.drop_index(op.f("ix_videos_user_id"), table_name="videos")
    op.drop_index("ix_videos_list_created", table_name="videos")
    op.drop_index("ix_videos_job_status", table_name="videos")
    op.drop_table("videos")
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    op.drop_index(op.f("ix_jobs_list_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("progress_streams")
    op.drop_index("ix_progress_events_job_seq", table_name="progress_events")
    op.drop_index("ix_progress_events_created_at", table_name="progress_events")
    op.drop_table("progress_events")
    op.drop_index(op.f("ix_bookmark_lists_user_id"), table_name="bookmark_lists")
    op.drop_table("bookmark_lists")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
