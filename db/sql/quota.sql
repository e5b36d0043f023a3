-- The daily YouTube Data API budget, shared by every worker (app/services/quota.py). A day is the
-- database's date in Pacific time: Google resets every project's quota at midnight there.

-- reserve_quota --
-- Adds $1 units to today's count unless that would pass the budget $2; returns the count after it (null: refused) and when today ends.
WITH today AS (
    SELECT (now() AT TIME ZONE 'America/Los_Angeles')::date AS day
), spent AS (
    INSERT INTO youtube_quota AS q (day, units)
    SELECT day, $1::int FROM today WHERE $1::int <= $2::int
    ON CONFLICT (day) DO UPDATE SET units = q.units + EXCLUDED.units
    WHERE q.units + EXCLUDED.units <= $2::int
    RETURNING q.units
)
SELECT
    (SELECT units FROM spent) AS units,
    ((SELECT day FROM today) + 1)::timestamp AT TIME ZONE 'America/Los_Angeles' AS resets_at

-- exhaust_quota --
-- Marks today's budget $1 as spent (YouTube itself said the quota is exhausted); returns when today ends.
WITH today AS (
    SELECT (now() AT TIME ZONE 'America/Los_Angeles')::date AS day
), spent AS (
    INSERT INTO youtube_quota AS q (day, units)
    SELECT day, $1::int FROM today
    ON CONFLICT (day) DO UPDATE SET units = greatest(q.units, EXCLUDED.units)
    RETURNING q.units
)
SELECT
    (SELECT units FROM spent) AS units,
    ((SELECT day FROM today) + 1)::timestamp AT TIME ZONE 'America/Los_Angeles' AS resets_at

-- quota_today --
-- Units spent today (Pacific time) and when today ends, for /metrics and the health report.
SELECT
    coalesce(
        (SELECT units FROM youtube_quota WHERE day = (now() AT TIME ZONE 'America/Los_Angeles')::date), 0
    ) AS units,
    ((now() AT TIME ZONE 'America/Los_Angeles')::date + 1)::timestamp AT TIME ZONE 'America/Los_Angeles'
        AS resets_at
