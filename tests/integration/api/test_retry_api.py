"""Retry any time and jobs you can find again: `POST /api/lists/{id}/retry-failed`, `POST /api/videos/retry`,
a re-import that retries failed links, job sources, the history's outcome filter, and stalled jobs in
`/api/health` and `/metrics` (no worker runs here: the tables are arranged as a worker leaves them)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account
from tests.integration.api.helpers import (
    Client,
    Sessions,
    count_rows,
    create_list,
    fetch_all,
    import_ids,
    post_import,
)
from tests.integration.api.test_jobs_api import execute


async def finish_with_failures(
    sessions: Sessions, job_id: str, failed: list[str], status: str = "failed"
) -> None:
    """What a worker leaves: the given videos failed (the rest ready), the job finished with `status`."""
    await execute(
        sessions,
        "UPDATE videos SET status = CASE WHEN youtube_id = ANY(:failed) THEN 'failed' ELSE 'ready' END, "
        "error = CASE WHEN youtube_id = ANY(:failed) THEN 'temporarily unavailable' END WHERE job_id = :job",
        failed=failed,
        job=job_id,
    )
    await execute(
        sessions,
        "UPDATE jobs SET status = :status, processed = total, failed = :n, finished_at = now() WHERE id = :job",
        status=status,
        n=len(failed),
        job=job_id,
    )


async def video_rows(sessions: Sessions, list_id: str) -> dict[str, dict[str, Any]]:
    rows = await fetch_all(
        sessions,
        "SELECT id::text, youtube_id, status, job_id::text, error FROM videos WHERE list_id = :list",
        list=list_id,
    )
    return {row["youtube_id"]: row for row in rows}


async def test_retry_failed_of_a_list_takes_every_failed_video_into_a_new_job(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Every failed video of the list (from any finished job) moves into one new `retry` job, pending;
    ready ones and those of a running job stay; a list with nothing failed answers 409."""
    music = await create_list(client, alice)
    first = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    second = (await import_ids(client, alice, music["id"], ["vid00000003", "vid00000004"]))["job"]
    running = (await import_ids(client, alice, music["id"], ["vid00000005"]))["job"]
    await finish_with_failures(session_maker, first["id"], ["vid00000001"])
    await finish_with_failures(session_maker, second["id"], ["vid00000003"], "completed_with_errors")
    await execute(session_maker, "UPDATE videos SET status = 'failed' WHERE youtube_id = 'vid00000005'")
    await execute(session_maker, "UPDATE jobs SET status = 'running' WHERE id = :job", job=running["id"])

    response = await client.post(f"/api/lists/{music['id']}/retry-failed", headers=alice.headers)

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["source"], job["status"], job["total"]) == (
        "retry",
        "retry of 2 failed videos",
        "queued",
        2,
    )
    videos = await video_rows(session_maker, music["id"])
    assert {yid for yid, video in videos.items() if video["job_id"] == job["id"]} == {
        "vid00000001",
        "vid00000003",
    }
    assert all(
        videos[yid]["status"] == "pending" and videos[yid]["error"] is None
        for yid in ("vid00000001", "vid00000003")
    )
    assert videos["vid00000005"]["job_id"] == running["id"], "a running job's video is not taken"
    again = await client.post(f"/api/lists/{music['id']}/retry-failed", headers=alice.headers)
    assert again.status_code == 409
    assert again.json()["detail"] == "this list has no failed video to retry"


async def test_retrying_chosen_videos_makes_a_job_per_list_and_refuses_what_is_not_yours(
    client: Client, alice: Account, bob: Account, session_maker: Sessions
) -> None:
    """`POST /api/videos/retry` takes the chosen failed or cancelled videos (one job per list); a ready
    one is left alone; another user's id is 404 and changes nothing; nothing to retry is 409."""
    music, talks = await create_list(client, alice, "Music"), await create_list(client, alice, "Talks")
    one = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"]))["job"]
    two = (await import_ids(client, alice, talks["id"], ["vid00000003"]))["job"]
    await finish_with_failures(session_maker, one["id"], ["vid00000001"])
    await finish_with_failures(session_maker, two["id"], ["vid00000003"])
    by_id = (await video_rows(session_maker, music["id"])) | (await video_rows(session_maker, talks["id"]))
    chosen = [by_id[yid]["id"] for yid in ("vid00000001", "vid00000002", "vid00000003")]
    bobs_list = await create_list(client, bob, "Bob")
    await import_ids(client, bob, bobs_list["id"], ["vid00000009"])
    bobs_video = (await video_rows(session_maker, bobs_list["id"]))["vid00000009"]["id"]
    before = await count_rows(session_maker)

    foreign = await client.post(
        "/api/videos/retry", json={"ids": [chosen[0], bobs_video]}, headers=alice.headers
    )

    assert foreign.status_code == 404
    assert await count_rows(session_maker) == before
    response = await client.post("/api/videos/retry", json={"ids": chosen}, headers=alice.headers)
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert sorted((job["list_id"], job["total"], job["source"]) for job in jobs) == sorted(
        [(music["id"], 1, "retry of 1 video"), (talks["id"], 1, "retry of 1 video")]
    )
    nothing = await client.post("/api/videos/retry", json={"ids": [chosen[1]]}, headers=alice.headers)
    assert nothing.status_code == 409
    empty = await client.post("/api/videos/retry", json={"ids": []}, headers=alice.headers)
    assert empty.status_code == 400


async def test_reimporting_a_failed_link_retries_it_instead_of_counting_a_duplicate(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A re-import takes failed and cancelled videos into its job (`retried`), counts ready ones as
    duplicates, and adds new ones; re-adding one failed video retries it too."""
    music = await create_list(client, alice)
    first = (await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000003"]))[
        "job"
    ]
    await finish_with_failures(session_maker, first["id"], ["vid00000001"])

    result = await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000004"])

    assert (result["accepted"], result["retried"], result["duplicates"]) == (2, 1, 1)
    assert result["job"]["total"] == 2
    assert result["job"]["message"] == "Queued 2 videos (1 retried)"
    videos = await video_rows(session_maker, music["id"])
    assert videos["vid00000001"]["job_id"] == result["job"]["id"]
    assert videos["vid00000001"]["status"] == "pending"
    assert videos["vid00000002"]["job_id"] == first["id"]
    await finish_with_failures(session_maker, result["job"]["id"], ["vid00000004"])
    added = await client.post(
        f"/api/lists/{music['id']}/videos",
        json={"url": "https://youtu.be/vid00000004"},
        headers=alice.headers,
    )
    assert added.status_code == 201, added.text
    assert added.json()["status"] == "pending"
    again = await client.post(
        f"/api/lists/{music['id']}/videos",
        json={"url": "https://youtu.be/vid00000004"},
        headers=alice.headers,
    )
    assert again.status_code == 409, "pending in a queued job: a duplicate"


async def test_jobs_record_their_kind_and_a_source_a_person_recognises(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A file upload is named by its file (without the path a browser may send), pasted links by their
    count, an added video as such, a job's retry after its origin."""
    music = await create_list(client, alice)
    upload = await client.post(
        f"/api/lists/{music['id']}/imports",
        files={"file": ("C:\\Users\\me\\my links.csv", b"vid00000001\nvid00000002\n", "text/csv")},
        headers=alice.headers,
    )
    assert upload.status_code == 202, upload.text
    pasted = await post_import(client, alice, music["id"], "vid00000003\n\nvid00000004\nvid00000005\n")
    assert pasted.status_code == 202
    added = await client.post(
        f"/api/lists/{music['id']}/videos", json={"url": "vid00000006"}, headers=alice.headers
    )
    assert added.status_code == 201
    await finish_with_failures(session_maker, upload.json()["job"]["id"], ["vid00000001"])
    retry = await client.post(f"/api/jobs/{upload.json()['job']['id']}/retry", headers=alice.headers)
    assert retry.status_code == 202

    jobs = (await client.get("/api/jobs", headers=alice.headers)).json()["items"]

    assert [(job["kind"], job["source"]) for job in jobs] == [
        ("retry", "retry of my links.csv"),
        ("add", "1 video added"),
        ("import", "3 pasted links"),
        ("import", "my links.csv"),
    ]
    assert jobs[0]["retry_of"] == upload.json()["job"]["id"]


async def test_the_history_filters_finished_jobs_by_outcome(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """`?state=finished&outcome=failed` lists only failed jobs; an unknown outcome is 400."""
    music = await create_list(client, alice)
    failed = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    partial = (await import_ids(client, alice, music["id"], ["vid00000002", "vid00000003"]))["job"]
    await finish_with_failures(session_maker, failed["id"], ["vid00000001"])
    await finish_with_failures(session_maker, partial["id"], ["vid00000002"], "completed_with_errors")

    async def ids(outcome: str) -> list[str]:
        response = await client.get(f"/api/jobs?state=finished&outcome={outcome}", headers=alice.headers)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["items"]]

    assert await ids("failed") == [failed["id"]]
    assert await ids("completed_with_errors") == [partial["id"]]
    assert await ids("completed") == []
    assert (await client.get("/api/jobs?outcome=running", headers=alice.headers)).status_code == 400


@pytest.mark.settings(job_heartbeat_s=5)
async def test_health_and_metrics_report_jobs_running_without_a_live_heartbeat(
    client: Client, alice: Account, session_maker: Sessions, settings: Settings
) -> None:
    """A running job whose worker stopped touching it (two heartbeats) is counted as stalled; a running
    job with a fresh heartbeat is not."""
    music = await create_list(client, alice)
    dead = (await import_ids(client, alice, music["id"], ["vid00000001"]))["job"]
    alive = (await import_ids(client, alice, music["id"], ["vid00000002"]))["job"]
    await execute(
        session_maker,
        "UPDATE jobs SET status = 'running', started_at = now() - interval '1 minute', "
        "heartbeat_at = CASE WHEN id = :dead THEN now() - interval '11 seconds' ELSE now() END",
        dead=dead["id"],
    )
    assert alive["id"] != dead["id"]

    health = (await client.get("/api/health")).json()
    assert health["jobs"] == {"ok": True, "stalled": 1, "stalled_after_s": 10}
    app = create_app(dataclasses.replace(settings, metrics_token="scrape-me"))
    async with AsyncTestClient(app) as scraper:
        text = (await scraper.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).text
    assert "bookmarks_jobs_stalled 1" in text
