"""refresh jobs, unavailable videos, waiting for the YouTube quota, schedules, uploads of many lists

- videos: status `unavailable` (was ready; a refresh found it gone, private or blocked; metadata kept),
  `unavailable_since`, `checked_at`, and an index for a refresh's walk through a list in id order.
- jobs: status `waiting` (holds no worker until the daily quota resets), a refresh's counts (`changed`,
  `gone`, `returned`), its keyset (`refresh_after`) and what it checks (`stale_before`), and `upload_id`
  (the jobs of one Takeout archive).
- bookmark_lists: `refresh_schedule` (off, weekly, monthly) and `next_refresh_at`.
- youtube_quota: Data API units spent per day (Pacific time), shared by every worker.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VIDEO_STATUSES = "'pending', 'ready', 'failed', 'cancelled'"
JOB_STATUSES = "'queued', 'running', 'completed', 'completed_with_errors', 'failed', 'cancelled'"


def _replace_check(table: str, name: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")


def upgrade() -> None:
    _replace_check("videos", "ck_videos_status", f"status IN ({VIDEO_STATUSES}, 'unavailable')")
    op.add_column("videos", sa.Column("checked_at", DateTimeUTC(timezone=True), nullable=True))
    op.add_column("videos", sa.Column("unavailable_since", DateTimeUTC(timezone=True), nullable=True))
    op.create_index("ix_videos_list_id", "videos", ["list_id", "id"], unique=False)

    _replace_check(
        "jobs",
        "ck_jobs_status",
        "status IN ('queued', 'running', 'waiting', 'completed', 'completed_with_errors', 'failed', "
        "'cancelled')",
    )
    op.add_column("jobs", sa.Column("upload_id", GUID(length=16), nullable=True))
    for column in ("changed", "gone", "returned"):
        op.add_column("jobs", sa.Column(column, sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("refresh_after", GUID(length=16), nullable=True))
    op.add_column("jobs", sa.Column("stale_before", DateTimeUTC(timezone=True), nullable=True))

    op.add_column(
        "bookmark_lists",
        sa.Column("refresh_schedule", sa.String(length=16), server_default="off", nullable=False),
    )
    op.add_column("bookmark_lists", sa.Column("next_refresh_at", DateTimeUTC(timezone=True), nullable=True))
    op.execute(
        "ALTER TABLE bookmark_lists ADD CONSTRAINT ck_bookmark_lists_refresh_schedule "
        "CHECK (refresh_schedule IN ('off', 'weekly', 'monthly'))"
    )
    op.create_index(
        "ix_bookmark_lists_next_refresh_at",
        "bookmark_lists",
        ["next_refresh_at"],
        unique=False,
        postgresql_where=sa.text("next_refresh_at IS NOT NULL"),
    )

    op.create_table(
        "youtube_quota",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("units", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_youtube_quota")),
    )


def downgrade() -> None:
    op.drop_table("youtube_quota")
    op.drop_index("ix_bookmark_lists_next_refresh_at", table_name="bookmark_lists")
    op.execute("ALTER TABLE bookmark_lists DROP CONSTRAINT ck_bookmark_lists_refresh_schedule")
    op.drop_column("bookmark_lists", "next_refresh_at")
    op.drop_column("bookmark_lists", "refresh_schedule")

    op.execute("UPDATE jobs SET status = 'failed', next_attempt_at = NULL WHERE status = 'waiting'")
    _replace_check("jobs", "ck_jobs_status", f"status IN ({JOB_STATUSES})")
    for column in ("stale_before", "refresh_after", "returned", "gone", "changed", "upload_id"):
        op.drop_column("jobs", column)

    op.drop_index("ix_videos_list_id", table_name="videos")
    op.drop_column("videos", "unavailable_since")
    op.drop_column("videos", "checked_at")
    # An unavailable video kept its metadata: it was ready before a refresh found it gone.
    op.execute("UPDATE videos SET status = 'ready' WHERE status = 'unavailable'")
    _replace_check("videos", "ck_videos_status", f"status IN ({VIDEO_STATUSES})")
