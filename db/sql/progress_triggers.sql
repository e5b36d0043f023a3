-- The current definitions of our functions and triggers: the declared schema, beside db/models.py.
-- Migrations never run this file: each one that changes a function or trigger carries a frozen copy of
-- what it installs, and tests/integration/db/test_schema.py checks that the migrated schema equals this.

-- create_sequence_and_notify_function --
-- Gives each new progress event the next per-user seq (under the progress_streams row lock held to commit) and queues its NOTIFY.
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

-- create_sequence_and_notify_trigger --
-- Installs the seq-assigning, notifying trigger on progress_events (writers keep jobs.last_seq themselves).
CREATE TRIGGER progress_events_sequence_and_notify
    BEFORE INSERT ON progress_events
    FOR EACH ROW EXECUTE FUNCTION progress_events_sequence_and_notify_v1()
