-- insert_pending_videos --
-- Adds ids ($5, new row ids $4) to list $1 of user $2 as pending videos of job $3; an id already there that failed or was cancelled (and no active job holds) is taken into job $3 again; returns (added, retried).
WITH written AS (
    INSERT INTO videos (id, list_id, user_id, youtube_id, status, job_id, created_at, updated_at)
    SELECT new.id, $1, $2, new.youtube_id, 'pending', $3, now(), now()
    FROM unnest($4::uuid[], $5::text[]) AS new(id, youtube_id)
    ON CONFLICT (list_id, youtube_id) DO UPDATE
    SET status = 'pending', job_id = EXCLUDED.job_id, error = NULL, updated_at = now()
    WHERE videos.status IN ('failed', 'cancelled')
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS j WHERE j.id = videos.job_id AND j.status IN ('queued', 'running')
      )
    -- xmax is 0 on a row this statement inserted, set on one it updated.
    RETURNING (xmax = 0) AS added
)
SELECT count(*) FILTER (WHERE added) AS added, count(*) FILTER (WHERE NOT added) AS retried FROM written


-- lock_pending_of_batch --
-- Locks which of the row ids $2 are still pending videos of job $1 and returns them; one index lookup per id whatever the statistics.
SELECT b.id
FROM unnest($2::uuid[]) AS b(id)
CROSS JOIN LATERAL (
    -- FOR UPDATE keeps this subquery from being flattened into a join that could scan the job's videos.
    SELECT 1 FROM videos AS v WHERE v.id = b.id AND v.job_id = $1 AND v.status = 'pending' FOR UPDATE
) AS still_pending
