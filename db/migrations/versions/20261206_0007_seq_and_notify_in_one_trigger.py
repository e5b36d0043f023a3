"""progress_events: one BEFORE INSERT trigger assigns seq and sends the NOTIFY; it no longer updates jobs

The seq trigger's `UPDATE jobs SET last_seq` was half its cost (docs/benchmarks.md, P5). Every writer of
events now sets `jobs.last_seq` itself from the INSERT's `RETURNING seq`, in the same transaction
(`app/services/jobs.write_event`); the worker updates the job row in that transaction anyway. The NOTIFY
moves into the same BEFORE trigger: a NOTIFY is sent at commit wherever it is queued, and is discarded
with the statement or (sub)transaction that fails, so one trigger call does both.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEQUENCE_AND_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION progress_events_sequence_and_notify_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload text;
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
    -- Queued now, sent at commit in seq order, discarded if this row's statement or transaction fails.
    -- NOTIFY payloads must stay under 8000 bytes; the hub completes a truncated event from the table.
    payload := NEW.data::text;
    IF octet_length(payload) > 7900 THEN
        payload := jsonb_build_object('seq', NEW.seq, 'job_id', NEW.job_id, 'truncated', true)::text;
    END IF;
    PERFORM pg_notify('progress_user_' || NEW.user_id::text, payload);
    RETURN NEW;
END;
$$
"""
SEQUENCE_AND_NOTIFY_TRIGGER = """
CREATE TRIGGER progress_events_sequence_and_notify
    BEFORE INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_sequence_and_notify_v1()
"""

# What 0003 (seq) and 0001 (notify) installed, for the downgrade.
ASSIGN_SEQ_FUNCTION_BEFORE = """
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
NOTIFY_FUNCTION_BEFORE = """
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
"""
TRIGGERS_BEFORE = [
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
]


def upgrade() -> None:
    op.execute(SEQUENCE_AND_NOTIFY_FUNCTION)
    op.execute("DROP TRIGGER progress_events_notify ON progress_events")
    op.execute("DROP TRIGGER progress_events_assign_seq ON progress_events")
    op.execute(SEQUENCE_AND_NOTIFY_TRIGGER)
    op.execute("DROP FUNCTION progress_events_notify_v1()")
    op.execute("DROP FUNCTION progress_events_assign_seq_v1()")


def downgrade() -> None:
    op.execute(ASSIGN_SEQ_FUNCTION_BEFORE)
    op.execute(NOTIFY_FUNCTION_BEFORE)
    op.execute("DROP TRIGGER progress_events_sequence_and_notify ON progress_events")
    for trigger in TRIGGERS_BEFORE:
        op.execute(trigger)
    op.execute("DROP FUNCTION progress_events_sequence_and_notify_v1()")
    # Jobs written since kept last_seq themselves; the restored trigger keeps it from the next event on.
