"""`/api/jobs`: listing by state, reading, cancelling and retrying jobs (no worker runs here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from testkit.accounts import Account
from tests.integration.api.helpers import Client, Sessions, count_rows, create_list, fetch_all, import_ids


async def execute(sessions: Sessions, sql: str, **params: Any) -> None:
    async with sessions() as session:
        await session.execute(text(sql), params)
        await session.commit()


async def videos_of_job(sessions: Sessions, job_id: str) -> list[dict[str, Any]]:
    return await fetch_all(
        sessions,
        "SELECT id::text, youtube_id, status FROM videos WHERE job_id = :job ORDER BY youtube_id",
        job=job_id,
    )


async def events_of_job(sessions: Sessions, job_id: str) -> list[dict[str, Any]]:
    return await fetch_all(
        sessions, "SELECT seq, data FROM progress_events WHERE job_id = :job ORDER BY seq", job=job_id
    )


async def cancel(client: Client, account: Account, job_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/jobs/{job_id}/cancel", headers=account.headers)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_jobs_are_listed_by_state_newest_first(client: Client, alice: Account) -> None:
    """`?state=active` lists queued/running jobs, `?state=finished` the others, no state lists all."""
    music = await create_list(client, alice)
    older = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    newer = (await import_ids(client, alice, music["id"], ["vid00000002"]))["job"]
    await cancel(client, alice, older["id"])

    async def ids(query: str) -> tuple[list[str], int]:
        response = await client.get(f"/api/jobs{query}", headers=alice.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "total", "limit", "offset"}
        return [item["id"] for item in page["items"]], page["total"]

    assert await ids("") == ([newer["id"], older["id"]], 2)
    assert await ids("?state=active") == ([newer["id"]], 1)
    assert await ids("?state=finished") == ([older["id"]], 1)
    assert await ids("?limit=1&offset=1") == ([older["id"]], 2)
    assert (await client.get("/api/jobs?state=done", headers=alice.headers)).status_code == 400


async def test_jobs_can_be_filtered_by_list(client: Client, alice: Account) -> None:
    """`?list_id=` keeps only that list's jobs."""
    music = await create_list(client, alice, "Music")
    other = await create_list(client, alice, "Other")
    mine = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    await import_ids(client, alice, other["id"], ["vid00000001"])
    page = (await client.get(f"/api/jobs?list_id={music['id']}", headers=alice.headers)).json()
    assert ([item["id"] for item in page["items"]], page["total"]) == ([mine["id"]], 1)


async def test_get_job_returns_its_state(client: Client, alice: Account) -> None:
    """`GET /api/jobs/{id}` answers the job as the import created it; an unknown id is 404."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    response = await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert body == job
    assert (body["status"], body["total"], body["processed"], body["progress"]) == ("queued", 2, 0, 0.0)
    missing = await client.get("/api/jobs/01a226b6-0000-7000-8000-000000000000", headers=alice.headers)
    assert missing.status_code == 404


async def test_cancelling_a_queued_job_ends_it_with_one_event(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A queued job cancels at once: job and videos cancelled, exactly one `cancelled` progress event."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    cancelled = await cancel(client, alice, job["id"])
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
    assert cancelled["finished_at"] is not None
    assert {v["status"] for v in await videos_of_job(session_maker, job["id"])} == {"cancelled"}
    events = await events_of_job(session_maker, job["id"])
    assert len(events) == 1
    data = events[0]["data"]
    assert (data["status"], data["job_id"], data["seq"], data["total"]) == ("cancelled", job["id"], 1, 2)
    row = (await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)).json()
    assert (row["status"], row["last_seq"]) == ("cancelled", events[0]["seq"])


async def test_cancelling_twice_is_409_and_writes_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A job that already ended cannot be cancelled: 409, and no second event."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    await cancel(client, alice, job["id"])
    before = await count_rows(session_maker)
    again = await client.post(f"/api/jobs/{job['id']}/cancel", headers=alice.headers)
    assert again.status_code == 409, again.text
    assert "cancelled" in again.json()["detail"]
    assert await count_rows(session_maker) == before


async def test_cancel_answers_the_seq_of_its_event(client: Client, alice: Account) -> None:
    """The cancel answer carries the job's last_seq as stored: the seq of the event the cancel wrote."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    cancelled = await cancel(client, alice, job["id"])
    stored = (await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)).json()
    assert stored["last_seq"] == 1
    assert cancelled["last_seq"] == stored["last_seq"]


async def test_retrying_a_cancelled_job_requeues_exactly_its_videos(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Retry answers 202 with a new queued job owning exactly the old job's videos, pending again, in SAQ."""
    music = await create_list(client, alice)
    old = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    await import_ids(client, alice, music["id"], ["vid00000003"])  # another job's video stays out of it
    await cancel(client, alice, old["id"])
    old_videos = await videos_of_job(session_maker, old["id"])
    response = await client.post(f"/api/jobs/{old['id']}/retry", headers=alice.headers)
    assert response.status_code == 202, response.text
    new = response.json()
    assert new["id"] != old["id"]
    assert (new["status"], new["kind"], new["total"], new["list_id"]) == ("queued", "retry", 2, music["id"])
    moved = await videos_of_job(session_maker, new["id"])
    assert [v["id"] for v in moved] == [v["id"] for v in old_videos]
    assert {v["status"] for v in moved} == {"pending"}
    assert await videos_of_job(session_maker, old["id"]) == []
    assert (await client.get(f"/api/jobs/{old['id']}", headers=alice.headers)).json()["status"] == "cancelled"
    saq = await fetch_all(session_maker, "SELECT status FROM saq_jobs WHERE key = :key", key=new["id"])
    assert saq == [{"status": "queued"}]


async def test_retry_takes_only_failed_and_cancelled_videos(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A finished job's ready videos stay; its failed and cancelled ones move to the retry job."""
    music = await create_list(client, alice)
    old = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000003"]))["job"]
    await execute(
        session_maker,
        "UPDATE videos SET status = CASE youtube_id WHEN 'vid00000001' THEN 'ready' "
        "WHEN 'vid00000002' THEN 'failed' ELSE 'cancelled' END",
    )
    await execute(
        session_maker,
        "UPDATE jobs SET status = 'completed_with_errors', processed = 2, failed = 1, finished_at = now()",
    )
    response = await client.post(f"/api/jobs/{old['id']}/retry", headers=alice.headers)
    assert response.status_code == 202, response.text
    new = response.json()
    assert new["total"] == 2
    assert [v["youtube_id"] for v in await videos_of_job(session_maker, new["id"])] == [
        "vid00000002",
        "vid00000003",
    ]
    assert [v["youtube_id"] for v in await videos_of_job(session_maker, old["id"])] == ["vid00000001"]


async def test_retry_with_nothing_to_retry_is_409_and_writes_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Retrying a queued job, a fully successful job or an already retried job is 409; nothing changes."""
    music = await create_list(client, alice)
    queued = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    done = (await import_ids(client, alice, music["id"], ["vid00000002"]))["job"]
    retried = (await import_ids(client, alice, music["id"], ["vid00000003"]))["job"]
    await execute(session_maker, "UPDATE videos SET status = 'ready' WHERE job_id = :job", job=done["id"])
    await execute(
        session_maker,
        "UPDATE jobs SET status = 'completed', processed = 1, finished_at = now() WHERE id = :job",
        job=done["id"],
    )
    await cancel(client, alice, retried["id"])
    assert (await client.post(f"/api/jobs/{retried['id']}/retry", headers=alice.headers)).status_code == 202
    before = await count_rows(session_maker)
    for job, word in ((queued, "queued"), (done, "no failed"), (retried, "no failed")):
        response = await client.post(f"/api/jobs/{job['id']}/retry", headers=alice.headers)
        assert response.status_code == 409, (word, response.text)
        assert word in response.json()["detail"]
    assert await count_rows(session_maker) == before


async def test_deleting_a_list_cancels_its_queued_job_which_survives(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Deleting a list cancels its queued job with one event; the job stays readable with list_id null."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    assert (await client.delete(f"/api/lists/{music['id']}", headers=alice.headers)).status_code == 204
    response = await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)
    assert response.status_code == 200, response.text
    survivor = response.json()
    assert (survivor["status"], survivor["list_id"], survivor["cancel_requested"]) == (
        "cancelled",
        None,
        True,
    )
    events = await events_of_job(session_maker, job["id"])
    assert [e["data"]["status"] for e in events] == ["cancelled"]
    assert survivor["last_seq"] == events[0]["seq"]
    assert (await count_rows(session_maker, ["videos"]))["videos"] == 0
    finished = (await client.get("/api/jobs?state=finished", headers=alice.headers)).json()
    assert [item["id"] for item in finished["items"]] == [job["id"]]


async def test_deleting_a_list_keeps_its_finished_jobs_as_they_were(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A finished job of a deleted list keeps its status and gets no new event; only list_id becomes null."""
    music = await create_list(client, alice)
    job = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    await execute(session_maker, "UPDATE videos SET status = 'ready'")
    await execute(session_maker, "UPDATE jobs SET status = 'completed', processed = 1, finished_at = now()")
    assert (await client.delete(f"/api/lists/{music['id']}", headers=alice.headers)).status_code == 204
    survivor = (await client.get(f"/api/jobs/{job['id']}", headers=alice.headers)).json()
    assert (survivor["status"], survivor["list_id"], survivor["processed"]) == ("completed", None, 1)
    assert await events_of_job(session_maker, job["id"]) == []
