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

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here, as this revision created them: the current definitions live in db/sql/progress_triggers.sql,
# and a change to them is a new migration (tests/integration/db/test_schema.py compares the two).
CREATE_TRIGGERS = (
    """
CREATE OR REPLACE FUNCTION progress_events_assign_seq_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Two transactions of one user serialise on this row until commit, so seq order is commit order:
    -- a reader that has seen seq N has seen every seq below N (DESIGN.md section 3).
    INSERT INTO progress_streams AS s (user_id, last_seq) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING s.last_seq INTO NEW.seq;
    NEW.created_at := clock_timestamp();
    NEW.data := NEW.data || jsonb_build_object(
        'seq', NEW.seq,
        'job_id', NEW.job_id,
        'at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    );
    UPDATE jobs SET last_seq = NEW.seq WHERE id = NEW.job_id;
    RETURN NEW;
END;
$$
""",
    """
CREATE OR REPLACE FUNCTION progress_events_notify_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload text := NEW.data::text;
BEGIN
    -- NOTIFY payloads must stay under 8000 bytes; the hub completes a truncated event from the table.
    IF octet_length(payload) > 7900 THEN
        payload := jsonb_build_object('seq', NEW.seq, 'job_id', NEW.job_id, 'truncated', true)::text;
    END IF;
    PERFORM pg_notify('progress_user_' || NEW.user_id::text, payload);
    RETURN NULL;
END;
$$
""",
    """
CREATE TRIGGER progress_events_assign_seq
    BEFORE INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_assign_seq_v1()
""",
    """
CREATE TRIGGER progress_events_notify
    AFTER INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_notify_v1()
""",
)
DROP_TRIGGERS = (
    """
DROP TRIGGER IF EXISTS progress_events_notify ON progress_events
""",
    """
DROP TRIGGER IF EXISTS progress_events_assign_seq ON progress_events
""",
    """
DROP FUNCTION IF EXISTS progress_events_notify_v1()
""",
    """
DROP FUNCTION IF EXISTS progress_events_assign_seq_v1()
""",
)


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
    # Autogenerate never sees functions or triggers: the commit-ordered seq and the NOTIFY.
    for statement in CREATE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS:
        op.execute(statement)
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
