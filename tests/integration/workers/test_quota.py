"""The daily YouTube budget (YOUTUBE_DAILY_QUOTA, app/services/quota.py): counted in Postgres for every
worker, never crossed, and a job that reaches it waits (holding no worker) until it resets at midnight
Pacific time, cancellable meanwhile, then resumes where it stopped."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from tests.integration.workers.conftest import (
    Client,
    Sessions,
    StartWorker,
    assert_counts_match_videos,
    create_list,
    execute,
    fetch_all,
    import_ids,
    job_events,
    job_row,
    poll_until,
    post_job_action,
    video_ids,
    wait_for_terminal,
    worker_settings,
)
from workers.worker import requeue_stranded_jobs

BUDGET = 1000
WAITING_OR_DONE = frozenset({"waiting", "completed", "completed_with_errors", "failed", "cancelled"})


async def quota_today(sessions: Sessions) -> dict[str, Any]:
    """Today's count (Pacific time) and when today ends, computed independently of the app's SQL."""
    [row] = await fetch_all(
        sessions,
        """
        SELECT coalesce(q.units, 0) AS units,
               ((now() AT TIME ZONE 'America/Los_Angeles')::date + 1)::timestamp
                   AT TIME ZONE 'America/Los_Angeles' AS midnight_pacific
        FROM (SELECT 1) AS one
        LEFT JOIN youtube_quota AS q ON q.day = (now() AT TIME ZONE 'America/Los_Angeles')::date
        """,
    )
    return row


async def leave_units(sessions: Sessions, units: int) -> None:
    """Today's count set so that `units` are left of BUDGET."""
    await execute(
        sessions,
        """
        INSERT INTO youtube_quota (day, units) VALUES ((now() AT TIME ZONE 'America/Los_Angeles')::date, :spent)
        ON CONFLICT (day) DO UPDATE SET units = :spent
        """,
        spent=BUDGET - units,
    )


async def a_new_day(sessions: Sessions, job_ids: list[UUID]) -> None:
    """What midnight Pacific does: today's count becomes yesterday's, and the waiting jobs are due."""
    await execute(sessions, "UPDATE youtube_quota SET day = day - 1")
    for job_id in job_ids:
        await execute(
            sessions,
            "UPDATE jobs SET next_attempt_at = now(), created_at = now() - interval '2 minutes' WHERE id = :id",
            id=job_id,
        )


def budgeted(settings: Settings, youtube: FakeYouTube) -> Settings:
    return replace(worker_settings(settings, youtube, progress_interval_ms=0), youtube_daily_quota=BUDGET)


async def wait_until_waiting(sessions: Sessions, job_id: UUID) -> dict[str, Any]:
    return await poll_until(
        lambda: job_row(sessions, job_id),
        lambda job: job["status"] in WAITING_OR_DONE,
        what=f"job {job_id} to wait for the quota",
    )


async def test_a_refresh_stops_at_the_budget_waits_until_midnight_pacific_and_resumes_the_next_day(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """With 3 units left, a 250-video check makes exactly 3 requests, then waits (holding no worker) until
    midnight Pacific time and says so; the next day it resumes after its last batch and checks the rest,
    each video counted once."""
    worker = await start_worker(budgeted(settings, youtube))
    list_id = await create_list(client, alice, "Budget")
    ids = video_ids(250)
    assert (await wait_for_terminal(session_maker, await import_ids(client, alice, list_id, ids)))[
        "status"
    ] == "completed"
    await leave_units(session_maker, 3)
    youtube.vanish(ids[-1:])
    youtube.reset()

    response = await client.post(f"/api/lists/{list_id}/refresh", headers=alice.headers)
    job_id = UUID(response.json()["id"])
    job = await wait_until_waiting(session_maker, job_id)

    today = await quota_today(session_maker)
    assert youtube.stats()["api_requests"] == 3
    assert today["units"] == BUDGET
    assert (job["status"], job["processed"], job["total"]) == ("waiting", 150, 250)
    assert job["next_attempt_at"] == today["midnight_pacific"]
    assert "quota" in job["message"] and "midnight Pacific time" in job["message"]
    assert "100 videos wait" in job["message"]
    [saq_job] = await fetch_all(
        session_maker, "SELECT status FROM saq_jobs WHERE key = :key", key=str(job_id)
    )
    assert saq_job["status"] == "complete", "a waiting job holds no worker"
    waiting_event = (await job_events(session_maker, job_id))[-1]
    assert (waiting_event["status"], waiting_event["next_attempt_at"]) == (
        "waiting",
        today["midnight_pacific"].isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    assert await requeue_stranded_jobs(worker.context) == 0, "not before the reset"

    await a_new_day(session_maker, [job_id])
    assert await requeue_stranded_jobs(worker.context) == 1
    done = await wait_for_terminal(session_maker, job_id)

    assert (done["status"], done["processed"], done["total"], done["gone"], done["failed"]) == (
        "completed", 250, 250, 1, 0,
    )  # fmt: skip
    assert youtube.stats()["api_requests"] == 5
    assert (await quota_today(session_maker))["units"] == 2
    events = await job_events(session_maker, job_id)
    statuses = [event["status"] for event in events]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert statuses.count("waiting") == 1
    assert [event["message"] for event in events].count("Resuming") == 1
    processed = [event["processed"] for event in events]
    assert processed == sorted(processed)


async def test_jobs_running_at_once_spend_exactly_the_budget_between_them(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Three imports on a worker that runs four jobs at once, 5 units left: 5 requests in all, never a
    sixth, and every job waits with its unfetched videos pending."""
    await leave_units(session_maker, 5)
    youtube.latency_ms = 50
    await start_worker(budgeted(settings, youtube))
    job_ids = []
    for number in range(3):
        list_id = await create_list(client, alice, f"At once {number}")
        job_ids.append(await import_ids(client, alice, list_id, video_ids(200, start=number * 1000)))

    jobs = [await wait_until_waiting(session_maker, job_id) for job_id in job_ids]

    assert youtube.stats()["api_requests"] == 5
    assert (await quota_today(session_maker))["units"] == BUDGET
    assert [job["status"] for job in jobs] == ["waiting"] * 3
    assert sum(job["processed"] for job in jobs) == 5 * 50
    for job in jobs:
        counts = await assert_counts_match_videos(session_maker, job)
        assert counts["pending"] == 200 - job["processed"]


async def test_a_job_waiting_for_the_quota_is_cancelled_at_once(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Cancel ends a waiting job in the request itself (no worker holds it): `cancelled`, its unfetched
    videos cancelled, a terminal event."""
    await leave_units(session_maker, 1)
    await start_worker(budgeted(settings, youtube))
    list_id = await create_list(client, alice, "Cancel while waiting")
    job_id = await import_ids(client, alice, list_id, video_ids(120))
    assert (await wait_until_waiting(session_maker, job_id))["status"] == "waiting"

    answer = await post_job_action(client, alice, job_id, "cancel")

    assert answer["status"] == "cancelled"
    assert answer["message"] == "Cancelled while waiting for the YouTube quota (50 of 120 done)"
    job = await job_row(session_maker, job_id)
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"ready": 50, "cancelled": 70}
    events = await job_events(session_maker, job_id)
    assert [event["status"] for event in events][-2:] == ["waiting", "cancelled"]


@pytest.mark.parametrize("reason", ["quotaExceeded", "dailyLimitExceeded"])
async def test_youtube_saying_the_quota_is_spent_makes_every_job_wait_for_the_reset(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
    reason: str,
) -> None:
    """YouTube's own quotaExceeded (the key is shared, or the budget is set above its quota) marks the day
    spent: the job waits for the reset without failing its videos, a second job waits without asking
    YouTube at all, and after the reset both finish."""
    worker = await start_worker(budgeted(settings, youtube))
    youtube.fail_next(1, status=403, reason=reason)
    first_list = await create_list(client, alice, "Shared key")
    first = await import_ids(client, alice, first_list, video_ids(100))
    assert (await wait_until_waiting(session_maker, first))["status"] == "waiting"
    assert (await quota_today(session_maker))["units"] == BUDGET
    asked = youtube.stats()["api_requests"]

    second_list = await create_list(client, alice, "Second")
    second = await import_ids(client, alice, second_list, video_ids(60, start=500))
    waiting = await wait_until_waiting(session_maker, second)

    assert waiting["status"] == "waiting" and waiting["processed"] == 0
    assert youtube.stats()["api_requests"] == asked, "no request once the day is known to be spent"
    job = await job_row(session_maker, first)
    assert "quota" in job["message"]
    assert (await assert_counts_match_videos(session_maker, job)) == {"pending": 100}

    await a_new_day(session_maker, [first, second])
    assert await requeue_stranded_jobs(worker.context) == 2
    for job_id, total in ((first, 100), (second, 60)):
        done = await wait_for_terminal(session_maker, job_id)
        assert (done["status"], done["processed"]) == ("completed", total)
        await assert_counts_match_videos(session_maker, done)


async def test_metrics_say_how_much_of_the_budget_today_has_spent(
    settings: Settings, session_maker: Sessions
) -> None:
    """/metrics reports today's spent units (Pacific day) beside the budget."""
    await leave_units(session_maker, 3)
    app = create_app(replace(settings, metrics_token="scrape-me", youtube_daily_quota=BUDGET))
    async with AsyncTestClient(app=app) as scraper:
        response = await scraper.get("/metrics", headers={"Authorization": "Bearer scrape-me"})

    assert response.status_code == 200, response.text
    assert f"bookmarks_youtube_quota_units_today {BUDGET - 3}" in response.text
    assert f"bookmarks_youtube_quota_units_budget {BUDGET}" in response.text
