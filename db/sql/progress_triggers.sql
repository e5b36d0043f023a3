-- The current definitions of our functions and triggers: the declared schema, beside db/models.py.
-- Migrations never run this file: each one that changes a function or trigger carries a frozen copy of
-- what it installs, and tests/integration/db/test_schema.py checks that the migrated schema equals this.

-- create_assign_seq_function --
-- Gives each new progress event the next per-user seq, under the progress_streams row lock held to commit.
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

-- create_notify_function --
-- Sends the event (or a truncated marker when it would not fit in a NOTIFY payload) on the owner's channel.
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

-- create_assign_seq_trigger --
-- Installs the seq-assigning trigger on progress_events.
CREATE TRIGGER progress_events_assign_seq
    BEFORE INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_assign_seq_v1()

-- create_notify_trigger --
-- Installs the notifying trigger on progress_events.
CREATE TRIGGER progress_events_notify
    AFTER INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_notify_v1()
