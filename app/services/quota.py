"""The daily YouTube Data API budget (`YOUTUBE_DAILY_QUOTA`), counted in Postgres across every worker.

`videos.list` costs one unit a call (up to 50 ids), retries included. Before each call a worker adds its
unit to today's row of `youtube_quota` in one statement that refuses to pass the budget, so however many
workers run, no call is made that would cross it; a refused one raises `QuotaReached` and the job waits
for the reset (workers/processing.py). The day is Pacific time, as Google's: its quotas reset at midnight
there, so a day here ends when Google's does, whatever the server's or the user's time zone. The date is
the database's (one clock for every worker host).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import queries


class QuotaReached(Exception):
    """Today's budget has no unit left for the next Data API call."""

    def __init__(self, budget: int, resets_at: datetime) -> None:
        super().__init__(
            f"the daily YouTube quota of {budget:,} units is used up until {resets_at.isoformat()}"
        )
        self.budget = budget
        self.resets_at = resets_at


@dataclass(frozen=True)
class QuotaDay:
    units: int
    """Units spent today."""
    resets_at: datetime
    """Midnight Pacific time, when today ends."""


async def spend(session: AsyncSession, budget: int, units: int = 1) -> QuotaDay:
    """Counts `units` against today's budget, or raises QuotaReached (nothing counted) if they would
    cross it. Commit at once: the other workers must see it."""
    connection = await session.connection()
    row = (await connection.exec_driver_sql(queries["reserve_quota"], (units, budget))).one()
    if row.units is None:
        raise QuotaReached(budget, row.resets_at)
    return QuotaDay(row.units, row.resets_at)


async def exhaust(session: AsyncSession, budget: int) -> QuotaDay:
    """YouTube said the quota is exhausted (its count and ours disagree: another app shares the key, or
    the budget is set above the key's quota): today counts as spent, so every job waits for the reset."""
    connection = await session.connection()
    row = (await connection.exec_driver_sql(queries["exhaust_quota"], (budget,))).one()
    return QuotaDay(row.units, row.resets_at)


async def today(session: AsyncSession) -> QuotaDay:
    connection = await session.connection()
    row = (await connection.exec_driver_sql(queries["quota_today"])).one()
    return QuotaDay(row.units, row.resets_at)
