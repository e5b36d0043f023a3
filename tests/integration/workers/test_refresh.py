"""Availability checks (`refresh` jobs) against the fake YouTube: a list imported once, then YouTube's
catalog changes (videos vanish, turn private, are removed, come back, are renamed) and the list is checked
again (docs/design.md, "Jobs")."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from app.settings import Settings
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from tests.integration.workers.conftest import (
    Client,
    Sessions,
    StartWorker,
    assert_progress_stream,
    create_list,
    execute,
    fetch_all,
    import_ids,
    job_events,
    job_row,
    poll_until,
    post_job_action,
    user_seqs,
    video_ids,
    wait_for_terminal,
    worker_settings,
)
from workers.worker import refresh_scheduled_lists
from workers.youtube import REASON_NOT_FOUND_API, REASON_PRIVATE

KEPT = ("title", "channel_title", "channel_id", "duration_s", "published_at", "thumbnail_url", "view_count")


async def list_videos(sessions: Sessions, list_id: str) -> dict[str, dict[str, Any]]:
    rows = await fetch_all(sessions, "SELECT * FROM videos WHERE list_id = :id", id=UUID(list_id))
    return {row["youtube_id"]: row for row in rows}


async def imported_list(
    client: Client, account: Account, sessions: Sessions, name: str, ids: list[str]
) -> str:
    """A list whose videos an import has fetched (a worker must be running)."""
    list_id = await create_list(client, account, name)
    job = await wait_for_terminal(sessions, await import_ids(client, account, list_id, ids))
    assert job["status"] == "completed", job
    return list_id


async def start_refresh(client: Client, account: Account, list_id: str) -> UUID:
    response = await client.post(f"/api/lists/{list_id}/refresh", headers=account.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["kind"], body["status"], body["source"]) == ("refresh", "queued", "availability check")
    return UUID(body["id"])


def counts(job: dict[str, Any]) -> tuple[int, ...]:
    return tuple(job[name] for name in ("total", "processed", "failed", "changed", "gone", "returned"))


async def test_a_refresh_flags_what_is_gone_keeps_its_metadata_updates_what_changed_and_brings_back_what_returns(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Vanished, private and removed videos become `unavailable` with YouTube's reason, `unavailable_since`
    and every stored field kept; a new title counts as changed, a new view count or thumbnail is stored;
    a second check brings the restored videos back to `ready`; each event carries the counts."""
    ids = video_ids(120)
    await start_worker(worker_settings(settings, youtube, progress_interval_ms=0))
    list_id = await imported_list(client, alice, session_maker, "Keep", ids)
    before = await list_videos(session_maker, list_id)
    deleted, private, removed = ids[3:6], ids[60:62], ids[100:101]
    youtube.vanish(deleted)
    youtube.make_private(private)
    youtube.block(removed, reason="copyright")
    youtube.update(ids[30], title="Renamed by its owner")
    youtube.update(ids[31], view_count=123)
    youtube.update(ids[32], thumbnail="hq720.jpg")

    job = await wait_for_terminal(session_maker, await start_refresh(client, alice, list_id))

    assert job["status"] == "completed"
    assert counts(job) == (120, 120, 0, 1, 6, 0)
    assert job["message"] == "Checked 120 videos: 6 gone, 1 changed"
    after = await list_videos(session_maker, list_id)
    gone = set(deleted) | set(private) | set(removed)
    for youtube_id, video in after.items():
        assert video["checked_at"] is not None
        if youtube_id in gone:
            assert video["status"] == "unavailable"
            assert video["unavailable_since"] is not None
            assert {name: video[name] for name in KEPT} == {name: before[youtube_id][name] for name in KEPT}
        else:
            assert (video["status"], video["unavailable_since"], video["error"]) == ("ready", None, None)
    assert {after[yid]["error"] for yid in deleted + private} == {REASON_NOT_FOUND_API}
    assert after[removed[0]]["error"] == "video was removed by YouTube (copyright infringement)"
    assert after[ids[30]]["title"] == "Renamed by its owner"
    assert after[ids[31]]["view_count"] == 123
    assert after[ids[32]]["thumbnail_url"] == f"https://i.ytimg.com/vi/{ids[32]}/hq720.jpg"
    events = await job_events(session_maker, job["id"])
    assert_progress_stream(events, job)
    assert (events[-1]["kind"], events[-1]["changed"], events[-1]["gone"], events[-1]["returned"]) == (
        "refresh", 1, 6, 0,
    )  # fmt: skip
    gone_counts = [event["gone"] for event in events]
    assert gone_counts == sorted(gone_counts)
    filtered = await client.get(f"/api/lists/{list_id}/videos?status=unavailable", headers=alice.headers)
    assert {video["youtube_id"] for video in filtered.json()["items"]} == gone
    assert all(video["unavailable_since"] and video["title"] for video in filtered.json()["items"])
    exported = await client.get(f"/api/lists/{list_id}/export.csv", headers=alice.headers)
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["youtube_id"] for row in rows if row["status"] == "unavailable"} == gone
    assert all(row["unavailable_since"] and row["checked_at"] for row in rows if row["youtube_id"] in gone)

    youtube.restore(deleted[:2])
    youtube.make_private([ids[61]])  # still private: stays unavailable, with its first date
    again = await wait_for_terminal(session_maker, await start_refresh(client, alice, list_id))

    assert counts(again) == (120, 120, 0, 0, 0, 2)
    assert again["message"] == "Checked 120 videos: 2 back"
    later = await list_videos(session_maker, list_id)
    for youtube_id in deleted[:2]:
        assert (later[youtube_id]["status"], later[youtube_id]["unavailable_since"]) == ("ready", None)
        assert later[youtube_id]["error"] is None
    for youtube_id in (deleted[2], *private, *removed):
        assert later[youtube_id]["status"] == "unavailable"
        assert later[youtube_id]["unavailable_since"] == after[youtube_id]["unavailable_since"]
    assert await user_seqs(session_maker, alice.user_id) == list(range(1, again["last_seq"] + 1))


async def test_an_oembed_refresh_keeps_what_oembed_does_not_know(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Without a key the check uses oEmbed, which has no views, duration or date and a smaller thumbnail:
    those stay as the Data API stored them; a private video (oEmbed 401) becomes unavailable with
    oEmbed's reason."""
    ids = video_ids(40)
    api_worker = await start_worker(worker_settings(settings, youtube))
    list_id = await imported_list(client, alice, session_maker, "Oembed", ids)
    before = await list_videos(session_maker, list_id)
    await api_worker.stop()
    await start_worker(worker_settings(settings, youtube, api=False))
    youtube.make_private(ids[:1])
    youtube.update(ids[1], title="New title")

    job = await wait_for_terminal(session_maker, await start_refresh(client, alice, list_id))

    assert counts(job) == (40, 40, 0, 1, 1, 0)
    after = await list_videos(session_maker, list_id)
    assert (after[ids[0]]["status"], after[ids[0]]["error"]) == (
        "unavailable",
        REASON_PRIVATE,
    )
    assert after[ids[1]]["title"] == "New title"
    for youtube_id in ids[1:]:
        for name in ("view_count", "duration_s", "published_at", "channel_id", "thumbnail_url"):
            assert after[youtube_id][name] == before[youtube_id][name], (youtube_id, name)
        assert after[youtube_id]["view_count"] is not None
    assert youtube.stats()["oembed_requests"] == 40


async def test_a_cancelled_refresh_keeps_what_it_checked_and_its_retry_checks_only_the_rest(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Cancel stops a refresh between batches (no video changes status for it); its Retry is a new refresh
    of exactly the videos it did not check, and a video YouTube did not answer for is checked again."""
    ids = video_ids(400)
    await start_worker(worker_settings(settings, youtube))
    list_id = await imported_list(client, alice, session_maker, "Cancel", ids)
    youtube.vanish(ids[-5:])
    youtube.latency_ms = 150
    # The first batch's request and its 4 retries are throttled: YouTube says nothing about those 50.
    youtube.fail_next(5, status=429, retry_after=0)
    job_id = await start_refresh(client, alice, list_id)
    await poll_until(
        lambda: job_row(session_maker, job_id),
        lambda job: job["processed"] >= 100,
        what="the refresh to check 100 videos",
    )

    await post_job_action(client, alice, job_id, "cancel")
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "cancelled"
    assert job["message"].startswith(f"Cancelled after checking {job['processed']} of 400 videos")
    assert job["failed"] == 50
    checked = {
        yid for yid, video in (await list_videos(session_maker, list_id)).items() if video["checked_at"]
    }
    assert len(checked) == job["processed"] - job["failed"]
    assert (await list_videos(session_maker, list_id))[ids[-1]]["status"] == "ready", "not reached yet"
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)

    youtube.latency_ms = 0
    served_before = youtube.requests_per_id
    retry = await post_job_action(client, alice, job_id, "retry")
    assert (retry["kind"], retry["source"], retry["total"]) == (
        "refresh",
        "retry of availability check",
        400 - len(checked),
    )
    retried = await wait_for_terminal(session_maker, UUID(retry["id"]))

    assert counts(retried) == (400 - len(checked), 400 - len(checked), 0, 0, 5, 0)
    fetched_again = youtube.requests_per_id - served_before
    assert not set(fetched_again) & checked, "a video the cancelled check had checked was checked again"
    videos = await list_videos(session_maker, list_id)
    assert all(video["checked_at"] is not None for video in videos.values())
    assert {yid for yid, video in videos.items() if video["status"] == "unavailable"} == set(ids[-5:])


async def test_a_second_check_of_a_list_being_checked_is_refused(
    client: Client,
    alice: Account,
    bob: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """409 while a check of the list is active, or when the list has nothing to check; 404 for another
    user's list; and nothing is written by a refusal."""
    await start_worker(worker_settings(settings, youtube))
    list_id = await imported_list(client, alice, session_maker, "Twice", video_ids(60))
    empty = await create_list(client, alice, "Empty")
    youtube.latency_ms = 300
    job_id = await start_refresh(client, alice, list_id)
    jobs_before = await fetch_all(session_maker, "SELECT id FROM jobs ORDER BY id")

    again = await client.post(f"/api/lists/{list_id}/refresh", headers=alice.headers)
    nothing = await client.post(f"/api/lists/{empty}/refresh", headers=alice.headers)
    foreign = await client.post(f"/api/lists/{list_id}/refresh", headers=bob.headers)

    assert again.status_code == 409, again.text
    assert again.json()["extra"] == {"job_id": str(job_id)}
    assert nothing.status_code == 409
    assert "no video to check" in nothing.json()["detail"]
    assert foreign.status_code == 404
    assert await fetch_all(session_maker, "SELECT id FROM jobs ORDER BY id") == jobs_before
    youtube.latency_ms = 0
    assert (await wait_for_terminal(session_maker, job_id))["status"] == "completed"


async def test_a_weekly_schedule_starts_a_check_when_due_and_moves_on_a_week(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """PATCH refresh_schedule=weekly makes the list due a week later; once due, the cron starts a
    `scheduled availability check` and the list is due again a week after it; `off` clears it."""
    worker = await start_worker(worker_settings(settings, youtube))
    list_id = await imported_list(client, alice, session_maker, "Weekly", video_ids(30))

    patched = await client.patch(
        f"/api/lists/{list_id}", json={"refresh_schedule": "weekly"}, headers=alice.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["refresh_schedule"] == "weekly"
    [row] = await fetch_all(
        session_maker,
        "SELECT now() AS now, next_refresh_at FROM bookmark_lists WHERE id = :id",
        id=UUID(list_id),
    )
    assert timedelta(days=7) - timedelta(minutes=1) < row["next_refresh_at"] - row["now"] <= timedelta(days=7)
    assert await refresh_scheduled_lists(worker.context) == 0, "not due yet"

    await execute(
        session_maker, "UPDATE bookmark_lists SET next_refresh_at = now() WHERE id = :id", id=UUID(list_id)
    )
    assert await refresh_scheduled_lists(worker.context) == 1
    [job] = await fetch_all(session_maker, "SELECT * FROM jobs WHERE kind = 'refresh'")
    assert job["source"] == "scheduled availability check"
    assert (await wait_for_terminal(session_maker, job["id"]))["processed"] == 30
    [row] = await fetch_all(
        session_maker,
        "SELECT now() AS now, next_refresh_at FROM bookmark_lists WHERE id = :id",
        id=UUID(list_id),
    )
    assert row["next_refresh_at"] - row["now"] > timedelta(days=6)

    bad = await client.patch(
        f"/api/lists/{list_id}", json={"refresh_schedule": "daily"}, headers=alice.headers
    )
    assert bad.status_code == 400
    off = await client.patch(f"/api/lists/{list_id}", json={"refresh_schedule": "off"}, headers=alice.headers)
    assert (off.json()["refresh_schedule"], off.json()["next_refresh_at"]) == ("off", None)


@pytest.mark.settings(job_heartbeat_s=3, queue_sweep_s=1)
@pytest.mark.slow
async def test_a_refresh_survives_its_worker_being_killed_without_counting_twice(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    worker_processes: Any,
) -> None:
    """A worker SIGKILLed mid-check: the next one resumes after the last committed batch, so every count
    is exact (each video checked once in the job's counts) and no committed batch is fetched again."""
    ids = video_ids(600)
    with FakeYouTube(latency_ms=0) as youtube:
        config = worker_settings(settings, youtube, progress_interval_ms=100)
        first = worker_processes.start(config)
        list_id = await imported_list(client, alice, session_maker, "Crash", ids)
        youtube.vanish(ids[::20])
        youtube.update(ids[7], title="Renamed")
        youtube.latency_ms = 150
        served_before = youtube.requests_per_id
        job_id = await start_refresh(client, alice, list_id)
        await poll_until(
            lambda: job_row(session_maker, job_id),
            lambda job: job["processed"] >= 150,
            what="the refresh to check 150 videos",
        )

        first.kill()
        first.wait(timeout=10)
        job = await job_row(session_maker, job_id)
        assert job["status"] == "running" and job["processed"] < 600
        worker_processes.start(config)
        job = await wait_for_terminal(session_maker, job_id, timeout_s=60)
        served = youtube.requests_per_id - served_before

    assert job["status"] == "completed"
    assert counts(job) == (600, 600, 0, 1, 30, 0)
    assert set(served) == {yid for yid in ids if yid not in ids[::20]}
    assert sum(1 for count in served.values() if count > 1) <= 50, "more than the in-flight batch again"
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert [event["message"] for event in events].count("Resuming") == 1
    videos = await list_videos(session_maker, list_id)
    assert sum(video["status"] == "unavailable" for video in videos.values()) == 30


async def test_a_refresh_marks_gone_only_on_youtubes_verdict_and_only_what_it_wrote(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """An answer without `items` and an item that does not decode are no verdict: those videos stay as
    they were and count as not answered (not gone); a gone video whose row the database refuses counts
    as not answered too, with the reason, and only the video really marked counts as gone."""
    ids = video_ids(60)
    await start_worker(worker_settings(settings, youtube))
    list_id = await imported_list(client, alice, session_maker, "Verdicts", ids)
    unreadable, refused, vanished = "zsu00000057", ids[59], ids[56]
    await execute(
        session_maker,
        "UPDATE videos SET youtube_id = :new WHERE youtube_id = :old",
        new=unreadable,
        old=ids[57],
    )
    await execute(
        session_maker,
        "ALTER TABLE videos ADD CONSTRAINT test_refuse"
        f" CHECK (status <> 'unavailable' OR youtube_id <> '{refused}')",
    )
    youtube.vanish([refused, vanished])
    youtube.fail_next(5, status=200, retry_after=0)  # the first batch's request and its retries: no `items`
    before = await list_videos(session_maker, list_id)

    job = await wait_for_terminal(session_maker, await start_refresh(client, alice, list_id))

    assert counts(job) == (60, 60, 52, 0, 1, 0)
    after = await list_videos(session_maker, list_id)
    untouched = {*ids[:50], unreadable, refused}
    for youtube_id in untouched:
        assert after[youtube_id] == before[youtube_id], youtube_id
    assert (after[vanished]["status"], after[vanished]["error"]) == ("unavailable", REASON_NOT_FOUND_API)
    assert {after[yid]["status"] for yid in set(after) - untouched - {vanished}} == {"ready"}
    assert (
        job["last_error"]
        == f"{refused}: YouTube sent metadata that could not be stored (CheckViolationError)"
    )
    assert_progress_stream(await job_events(session_maker, job["id"]), job)
