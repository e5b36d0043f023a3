"""videos: no `processing` status; the seq function's comment points at docs/design.md

`processing` was never written: a batch is fetched, then committed in one transaction, so no committed
row is ever "processing". The seq function changes only in its comment (a design document that is not in
the repository), but a function's text is part of the schema, so it changes here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ASSIGN_SEQ_FUNCTION = """
CREATE OR REPLACE FUNCTION progress_events_assign_seq_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Two transactions of one user serialise on this row until commit, so seq order is commit order:
    -- a reader that has seen seq N has seen every seq below N (docs/design.md, the commit-ordered cursor).
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
"""
ASSIGN_SEQ_FUNCTION_BEFORE = """
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
"""


def upgrade() -> None:
    op.execute("UPDATE videos SET status = 'pending' WHERE status = 'processing'")
    op.execute("ALTER TABLE videos DROP CONSTRAINT ck_videos_status")
    op.execute(
        "ALTER TABLE videos ADD CONSTRAINT ck_videos_status "
        "CHECK (status IN ('pending', 'ready', 'failed', 'cancelled'))"
    )
    op.execute(ASSIGN_SEQ_FUNCTION)


def downgrade() -> None:
    op.execute(ASSIGN_SEQ_FUNCTION_BEFORE)
    op.execute("ALTER TABLE videos DROP CONSTRAINT ck_videos_status")
    op.execute(
        "ALTER TABLE videos ADD CONSTRAINT ck_videos_status "
        "CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'cancelled'))"
    )
