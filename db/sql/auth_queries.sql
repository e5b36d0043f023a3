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
