-- progress_events_after --
-- A user's events with seq > $2 in seq order, at most $3, as (seq, JSON text): replay, catch-up and history.
SELECT seq, data::text AS data
FROM progress_events
WHERE user_id = $1 AND seq > $2::bigint
ORDER BY seq
LIMIT $3

-- progress_event_by_seq --
-- One event of a user by seq as JSON text (completes a truncated NOTIFY payload).
SELECT data::text AS data
FROM progress_events
WHERE user_id = $1 AND seq = $2::bigint

-- progress_resume --
-- In one MVCC snapshot: a user's last seq (every row) and up to $3 events with seq > $2 (none: one row, seq null).
SELECT head.last_seq, e.seq, e.data::text AS data
FROM (
    SELECT coalesce((SELECT s.last_seq FROM progress_streams AS s WHERE s.user_id = $1), 0) AS last_seq
) AS head
LEFT JOIN LATERAL (
    SELECT seq, data FROM progress_events
    WHERE user_id = $1 AND seq > $2::bigint
    ORDER BY seq
    LIMIT $3
) AS e ON true
ORDER BY e.seq

-- progress_snapshot --
-- In one MVCC snapshot: a user's last seq and, as a JSON array text, the state of active and recent jobs.
-- One statement, so the job states are exactly those after seq S: the next event a client needs is S + 1.
-- Jobs finished within $2 seconds count as recent; each state has the ProgressEvent shape (db/events.py).
SELECT
    coalesce((SELECT s.last_seq FROM progress_streams AS s WHERE s.user_id = $1), 0) AS last_seq,
    coalesce(
        (
            SELECT json_agg(
                json_build_object(
                    'seq', coalesce(j.last_seq, 0),
                    'job_id', j.id,
                    'list_id', j.list_id,
                    'kind', j.kind,
                    'source', j.source,
                    'status', j.status,
                    -- Same rule as db.events.progress_percent: an empty job is complete.
                    'progress', CASE
                        WHEN j.total = 0 THEN 100.0
                        ELSE round(100.0 * j.processed / j.total, 1)
                    END,
                    'processed', j.processed,
                    'failed', j.failed,
                    'total', j.total,
                    'rate', j.rate,
                    'eta_s', j.eta_s,
                    'message', j.message,
                    'error', j.last_error,
                    'started_at', to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'next_attempt_at', to_char(
                        j.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
                    ),
                    'at', to_char(
                        greatest(j.created_at, j.started_at, j.finished_at) AT TIME ZONE 'UTC',
                        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
                    )
                )
                ORDER BY j.created_at, j.id
            )
            FROM jobs AS j
            WHERE j.user_id = $1
              AND (
                  j.status IN ('queued', 'running')
                  OR j.finished_at >= now() - make_interval(secs => $2::double precision)
              )
        ),
        '[]'
    )::text AS jobs

-- progress_job_history --
-- One job's events with seq > $3 in seq order, at most $4, only when the job belongs to user $2.
SELECT seq, data::text AS data
FROM progress_events
WHERE job_id = $1 AND user_id = $2 AND seq > $3::bigint
ORDER BY seq
LIMIT $4

-- hub_probe --
-- Liveness probe of the hub's LISTEN connection.
SELECT 1

-- hub_listening_channels --
-- The channels the current session LISTENs on (diagnostics and tests of the hub's ref-counting).
SELECT coalesce(array_agg(c ORDER BY c), '{}') AS channels FROM pg_listening_channels() AS c
