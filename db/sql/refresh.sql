-- refresh_batch --
-- A refresh's next videos: list $1's ready and unavailable videos not checked since $2, past row id $3 (a keyset), in id order, at most $4; (youtube id, row id).
SELECT youtube_id, id
FROM videos
WHERE list_id = $1 AND id > $3::uuid AND status IN ('ready', 'unavailable')
  AND (checked_at IS NULL OR checked_at < $2)
ORDER BY id
LIMIT $4

-- refresh_remaining --
-- How many videos a refresh of list $1 (checking what was not checked since $2) has left past row id $3.
SELECT count(*) AS remaining
FROM videos
WHERE list_id = $1 AND id > $3::uuid AND status IN ('ready', 'unavailable')
  AND (checked_at IS NULL OR checked_at < $2)

-- lock_refresh_batch --
-- Locks which of the row ids $3 are still videos a refresh of list $1 (not checked since $2) checks, and returns what a check compares.
SELECT v.id, v.youtube_id, v.status, v.title, v.channel_title, v.thumbnail_url
FROM unnest($3::uuid[]) AS b(id)
CROSS JOIN LATERAL (
    -- FOR UPDATE keeps this subquery from being flattened into a join that could scan the list's videos.
    SELECT * FROM videos AS v
    WHERE v.id = b.id AND v.list_id = $1 AND v.status IN ('ready', 'unavailable')
      AND (v.checked_at IS NULL OR v.checked_at < $2)
    FOR UPDATE
) AS v

-- due_scheduled_refreshes --
-- Lists whose scheduled availability check is due, oldest due first, at most $1, locked (other workers skip them).
SELECT id, user_id, refresh_schedule
FROM bookmark_lists
WHERE next_refresh_at <= now()
ORDER BY next_refresh_at
LIMIT $1
FOR UPDATE SKIP LOCKED
