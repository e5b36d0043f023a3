-- prune_progress_events --
-- Deletes up to $2 progress events older than $1 (a timestamptz), oldest first; returns how many.
WITH doomed AS (
    SELECT id FROM progress_events WHERE created_at < $1 ORDER BY id LIMIT $2
)
DELETE FROM progress_events e USING doomed WHERE e.id = doomed.id

-- stranded_jobs --
-- Active jobs older than $1 seconds and not waiting for a later attempt: candidates for re-enqueueing when SAQ no longer runs them.
SELECT id FROM jobs
WHERE status IN ('queued', 'running') AND created_at < now() - make_interval(secs => $1)
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
ORDER BY created_at
LIMIT 500

-- stalled_jobs --
-- How many jobs are running with no live heartbeat (none for $1 seconds): their worker died or hangs.
SELECT count(*) AS stalled FROM jobs
WHERE status = 'running' AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => $1)

-- metrics_counts --
-- Jobs and videos by status, and how full Postgres's NOTIFY queue is (0..1), for /metrics.
SELECT 'jobs' AS kind, status, count(*)::float8 AS value FROM jobs GROUP BY status
UNION ALL
SELECT 'videos', status, count(*)::float8 FROM videos GROUP BY status
UNION ALL
SELECT 'notify_queue', 'usage', pg_notification_queue_usage()

-- server_version --
-- The server's release (server_version_num, e.g. 180004, and server_version), for health and metrics.
SELECT current_setting('server_version_num')::int AS number, current_setting('server_version') AS version
