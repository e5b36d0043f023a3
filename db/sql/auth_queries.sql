-- token_states --
-- The tokens among ids $1 that still exist, with their expiry and why they may no longer be used (null: valid).
SELECT
    t.id,
    t.expires_at,
    CASE
        WHEN t.revoked_at IS NOT NULL THEN 'token revoked'
        WHEN t.expires_at <= now() THEN 'token expired'
    END AS refusal
FROM api_tokens AS t
WHERE t.id = ANY($1::uuid[])

-- live_token --
-- The valid token with hash $1 (not revoked, not expired): its id, user and expiry; marks it used, at most once a minute.
WITH found AS (
    SELECT t.id, t.user_id, t.expires_at, t.last_used_at
    FROM api_tokens AS t
    WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
), touched AS (
    UPDATE api_tokens AS t SET last_used_at = now()
    FROM found
    WHERE t.id = found.id AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
)
SELECT id, user_id, expires_at FROM found
