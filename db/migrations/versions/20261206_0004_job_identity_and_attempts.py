"""jobs: source, bounded attempts, automatic retries, heartbeat

- `source`: what a person recognises the job by (a file name, "12 pasted links", "retry of …").
- `attempts`: runs of the job since it last committed progress; bounded, then the job ends `failed`.
- `next_attempt_at`: a running job waiting between attempts, or a failed job's next automatic retry.
- `auto_retries`: how many automatic retries led to this job (0 for a person's own job).
- `retry_of`: the job this one retries.
- `heartbeat_at`: the worker running the job touches it; a running job with an old one is stalled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("source", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("jobs", sa.Column("next_attempt_at", DateTimeUTC(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("auto_retries", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("jobs", sa.Column("retry_of", GUID(length=16), nullable=True))
    op.add_column("jobs", sa.Column("heartbeat_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_jobs_retry_of_jobs"), "jobs", "jobs", ["retry_of"], ["id"], ondelete="SET NULL"
    )
    op.create_index(
        "ix_jobs_next_attempt_at",
        "jobs",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    # Jobs made before sources existed: say what kind they were.
    op.execute(
        "UPDATE jobs SET source = CASE kind WHEN 'add' THEN '1 video added' "
        "WHEN 'retry' THEN 'retry' ELSE kind END"
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_next_attempt_at", table_name="jobs")
    op.drop_constraint(op.f("fk_jobs_retry_of_jobs"), "jobs", type_="foreignkey")
    for column in ("heartbeat_at", "retry_of", "auto_retries", "next_attempt_at", "attempts", "source"):
        op.drop_column("jobs", column)
