"""Jobs run by a SAQ worker in the test's event loop, against the fake YouTube over real HTTP.

The app (in the test client) creates the videos and the queued job and enqueues it; the worker fetches,
commits batch by batch and writes coalesced progress events (docs/design.md, "Jobs").
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import psycopg
import pytest
from saq import Job as SaqJob
from saq import Worker
from saq.job import Status
from saq.utils import now as saq_now

from app.imports.parsing import parse_import
from app.services import imports as import_service
from app.settings import Settings
from db.models import BookmarkList
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube, oembed_body
from tests.integration.workers.conftest import (
    METADATA_FIELDS,
    TERMINAL,
    WAIT_S,
    Client,
    Sessions,
    StartWorker,
    assert_counts_match_videos,
    assert_progress_stream,
    create_list,
    execute,
    fetch_all,
    import_ids,
    is_unavailable,
    job_events,
    job_row,
    job_videos,
    mixed_ids,
    poll_until,
    post_job_action,
    user_seqs,
    video_ids,
    wait_for_terminal,
    worker_settings,
)
from workers.worker import Context, requeue_stranded_jobs
from workers.youtube import REASON_NOT_FOUND, REASON_NOT_FOUND_API, REASON_PRIVATE


async def test_data_api_import_of_500_videos_maps_every_field_and_coalesces_events(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A 500-video Data API import ends completed_with_errors with exact metadata, counts from `videos`,
    and a short, gapless, monotonic event stream that ends in the terminal event."""
    youtube.latency_ms = 50  # ten batches take long enough for the 250 ms coalescing to matter
    ids = mixed_ids(500, private=15, deleted=15, live=5, hidden=5)
    await start_worker(worker_settings(settings, youtube, progress_interval_ms=250))
    list_id = await create_list(client, alice, "Music")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed_with_errors"
    videos = await job_videos(session_maker, job_id)
    assert set(videos) == set(ids)
    for youtube_id, video in videos.items():
        if is_unavailable(youtube_id):
            assert (video["status"], video["error"]) == ("failed", REASON_NOT_FOUND_API), video
            assert video["title"] is None
        else:
            expected = FakeYouTube.expected(youtube_id)
            assert video["status"] == "ready"
            assert video["error"] is None
            assert {name: video[name] for name in METADATA_FIELDS} == {
                name: expected[name] for name in METADATA_FIELDS
            }
            assert video["channel_id"] == expected["channel_id"]
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"ready": 470, "failed": 30}
    events = await job_events(session_maker, job_id)
    assert len(events) < 40
    assert_progress_stream(events, job, interval_s=0.25)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert await user_seqs(session_maker, alice.user_id) == list(range(1, len(events) + 1))
    assert youtube.stats()["api_requests"] == 10


async def test_oembed_import_without_a_key_maps_what_oembed_knows(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Without an API key every video goes through oEmbed: title, channel and thumbnail are mapped, the
    rest stays empty, private and deleted videos fail with their own reasons."""
    ids = mixed_ids(60, private=4, deleted=4)
    await start_worker(worker_settings(settings, youtube, api=False))
    list_id = await create_list(client, alice, "Talks")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed_with_errors"
    videos = await job_videos(session_maker, job_id)
    for youtube_id, video in videos.items():
        if youtube_id.startswith("prv"):
            assert (video["status"], video["error"]) == ("failed", REASON_PRIVATE)
        elif youtube_id.startswith("del"):
            assert (video["status"], video["error"]) == ("failed", REASON_NOT_FOUND)
        else:
            body = oembed_body(youtube_id)
            assert video["status"] == "ready"
            assert (video["title"], video["channel_title"], video["thumbnail_url"]) == (
                body["title"],
                body["author_name"],
                body["thumbnail_url"],
            )
            assert video["title"] == FakeYouTube.expected(youtube_id)["title"]
            assert (video["duration_s"], video["published_at"], video["view_count"]) == (None, None, None)
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"ready": 52, "failed": 8}
    events = await job_events(session_maker, job_id)
    assert len(events) < 40
    assert_progress_stream(events, job)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert youtube.stats()["api_requests"] == 0
    assert youtube.stats()["oembed_requests"] == 60


async def test_concurrent_jobs_of_one_user_share_one_gapless_seq_stream(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Four jobs of one user running at once number their events 1..N with no gap or duplicate."""
    youtube.latency_ms = 30
    list_ids = [await create_list(client, alice, f"List {n}") for n in range(4)]
    job_ids = [
        await import_ids(client, alice, list_id, video_ids(300, start=1000 * n))
        for n, list_id in enumerate(list_ids)
    ]

    # Queued first, so the worker (4 jobs at once) takes them together. Every batch writes an event, so
    # the four jobs' transactions contend for the user's stream row.
    await start_worker(worker_settings(settings, youtube, progress_interval_ms=0))
    jobs = [await wait_for_terminal(session_maker, job_id) for job_id in job_ids]

    assert [job["status"] for job in jobs] == ["completed"] * 4
    assert max(job["started_at"] for job in jobs) < min(job["finished_at"] for job in jobs), (
        "the jobs did not overlap, so this test proved nothing about concurrency"
    )
    seqs = await user_seqs(session_maker, alice.user_id)
    assert seqs == list(range(1, len(seqs) + 1))
    per_job = [await job_events(session_maker, job_id) for job_id in job_ids]
    assert sum(len(events) for events in per_job) == len(seqs)
    for job, events in zip(jobs, per_job, strict=True):
        await assert_counts_match_videos(session_maker, job)
        assert_progress_stream(events, job)
    first_seqs = sorted(events[0]["seq"] for events in per_job)
    last_seqs = sorted(events[-1]["seq"] for events in per_job)
    assert first_seqs[-1] < last_seqs[0], "the streams of the four jobs should interleave"


@pytest.mark.parametrize(("failures", "status"), [(3, 429), (2, 500)])
async def test_rate_limits_and_server_errors_are_retried(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
    failures: int,
    status: int,
) -> None:
    """A burst of 429s or 500s is retried with backoff and the job completes with no failed video."""
    ids = video_ids(100)
    youtube.fail_next(failures, status=status)
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Flaky")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed"
    assert (job["processed"], job["failed"]) == (100, 0)
    await assert_counts_match_videos(session_maker, job)
    assert youtube.requests == 2 + failures
    assert set(youtube.requests_per_id.values()) == {1}


async def test_a_batch_still_throttled_after_its_retries_fails_its_videos_as_retryable(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A batch still rate-limited after every attempt (YouTube is reachable: not an outage) fails its
    videos with a retry-later reason, and a retry of the job fetches them."""
    ids = video_ids(100)
    youtube.fail_next(5, status=429, retry_after=0)  # Retry-After: 0 keeps the five attempts quick
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Down")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed_with_errors"
    assert (job["processed"], job["failed"]) == (100, 50)
    videos = await job_videos(session_maker, job_id)
    failed = {yid for yid, video in videos.items() if video["status"] == "failed"}
    assert failed == set(ids[:50])
    assert all(videos[yid]["error"].startswith("temporarily unavailable, retry later") for yid in failed)
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert events[-1]["error"] is not None

    retry_id = UUID((await post_job_action(client, alice, job_id, "retry"))["id"])
    retried = await wait_for_terminal(session_maker, retry_id)

    assert (retried["status"], retried["total"], retried["failed"]) == ("completed", 50, 0)
    assert set(await job_videos(session_maker, retry_id)) == failed


async def test_cancel_mid_job_stops_between_batches_and_a_retry_finishes_the_rest(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Cancelling a running job ends it `cancelled` with its untouched videos cancelled and a terminal
    `cancelled` event; a retry runs exactly the cancelled and failed videos to completion."""
    ids = mixed_ids(500, private=10, deleted=10)
    youtube.latency_ms = 200
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Long")
    job_id = await import_ids(client, alice, list_id, ids)
    await poll_until(
        lambda: job_events(session_maker, job_id),
        lambda events: any(event["processed"] > 0 for event in events),
        what="a progress event with processed > 0",
    )

    cancelled = await post_job_action(client, alice, job_id, "cancel")
    assert cancelled["cancel_requested"] is True
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "cancelled"
    assert 0 < job["processed"] < 500
    videos = await job_videos(session_maker, job_id)
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts.get("pending", 0) == 0
    assert counts["cancelled"] == 500 - job["processed"]
    assert all(v["error"] == "cancelled" for v in videos.values() if v["status"] == "cancelled")
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert events[-1]["status"] == "cancelled"
    # Nothing was fetched for the cancelled videos after the job stopped.
    cancelled_ids = {yid for yid, video in videos.items() if video["status"] == "cancelled"}
    assert not cancelled_ids & set(youtube.requests_per_id)
    to_retry = cancelled_ids | {yid for yid, video in videos.items() if video["status"] == "failed"}

    youtube.latency_ms = 0
    retry = await post_job_action(client, alice, job_id, "retry")
    retry_id = UUID(retry["id"])
    retried = await wait_for_terminal(session_maker, retry_id)

    assert set(await job_videos(session_maker, retry_id)) == to_retry
    assert retried["total"] == len(to_retry)
    assert retried["status"] in {"completed", "completed_with_errors"}
    assert retried["status"] == ("completed_with_errors" if retried["failed"] else "completed")
    await assert_counts_match_videos(session_maker, retried)
    assert await job_row(session_maker, job_id) == job, "the cancelled job's row must not change"


async def test_notifications_carry_the_same_json_as_the_event_rows(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Every event of a job reaches a LISTENer on the user's channel, in seq order, as exactly the JSON
    of its row's `data`."""
    youtube.latency_ms = 20
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(settings.dsn)
    try:
        await listener.add_listener(
            f"progress_user_{alice.user_id}",
            lambda _conn, _pid, _channel, payload: received.put_nowait(json.loads(payload)),
        )
        await start_worker(worker_settings(settings, youtube, progress_interval_ms=0))
        list_id = await create_list(client, alice, "Live")
        job_id = await import_ids(client, alice, list_id, mixed_ids(300, private=3, deleted=3))

        notified: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT_S):
            while not notified or notified[-1]["status"] not in TERMINAL:
                notified.append(await received.get())
    finally:
        await listener.close()

    rows = await job_events(session_maker, job_id)
    assert len(rows) >= 3
    assert notified == rows
    assert [event["seq"] for event in notified] == list(range(1, len(rows) + 1))


async def test_a_job_cancelled_while_queued_is_never_fetched(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A job cancelled before any worker took it ends at once; a worker that dequeues it later skips it."""
    list_id = await create_list(client, alice, "Never")
    job_id = await import_ids(client, alice, list_id, video_ids(100))

    cancelled = await post_job_action(client, alice, job_id, "cancel")

    assert cancelled["status"] == "cancelled"
    worker = await start_worker(worker_settings(settings, youtube))
    await poll_until(
        lambda: saq_status(worker, job_id), lambda status: status == "complete", what="SAQ to run the job"
    )
    job = await job_row(session_maker, job_id)
    assert (job["status"], job["processed"], job["total"]) == ("cancelled", 0, 100)
    assert youtube.requests == 0
    events = await job_events(session_maker, job_id)
    assert [event["status"] for event in events] == ["cancelled"]
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"cancelled": 100}


async def saq_status(worker: Worker[Context], job_id: UUID) -> str | None:
    saq_job = await worker.queue.job(str(job_id))
    return None if saq_job is None else str(saq_job.status.value)


async def test_deleting_the_list_mid_job_cancels_the_job_which_outlives_the_list(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Deleting a list under a running job ends the job `cancelled` (terminal event included); the job
    and its events stay, with `list_id` null."""
    youtube.latency_ms = 100
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Doomed")
    job_id = await import_ids(client, alice, list_id, video_ids(500))
    await poll_until(
        lambda: job_row(session_maker, job_id),
        lambda job: job["processed"] > 0,
        what="the job to commit its first batch",
    )

    response = await client.delete(f"/api/lists/{list_id}", headers=alice.headers)
    assert response.status_code == 204, response.text
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "cancelled"
    assert job["list_id"] is None
    assert 0 < job["processed"] < 500
    assert await job_videos(session_maker, job_id) == {}
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert events[-1]["list_id"] is None
    assert await user_seqs(session_maker, alice.user_id) == list(range(1, len(events) + 1))


async def test_the_stranded_jobs_cron_enqueues_a_job_that_was_committed_but_never_enqueued(
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A queued job SAQ never heard of (a crash between commit and enqueue) is enqueued by the cron once
    it is a minute old, then runs; a job SAQ knows is left alone."""
    async with session_maker() as session:
        bookmark_list = BookmarkList(user_id=alice.user_id, name="Stranded")
        session.add(bookmark_list)
        await session.flush()
        parsed = parse_import("\n".join(video_ids(60)).encode(), max_rows=1000)
        outcome = await import_service.create_import(session, alice.user_id, bookmark_list.id, parsed)
        await session.commit()
    assert outcome.job is not None
    job_id = outcome.job.id
    worker = await start_worker(worker_settings(settings, youtube))

    assert await requeue_stranded_jobs(worker.context) == 0, "a job under a minute old is not stranded yet"
    await execute(
        session_maker, "UPDATE jobs SET created_at = now() - interval '2 minutes' WHERE id = :id", id=job_id
    )
    assert await requeue_stranded_jobs(worker.context) == 1
    assert await requeue_stranded_jobs(worker.context) == 0, "SAQ knows the job now"
    job = await wait_for_terminal(session_maker, job_id)

    assert (job["status"], job["processed"]) == ("completed", 60)


async def test_processing_reads_a_bounded_number_of_rows_per_video(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Committing a batch costs the same early and late in a big job: the rows the worker reads per video
    are a constant, whatever the job's size. It once scanned the job's pending rows for every video (~N/2
    rows per video), later recounted all of the job's videos every batch (N/50); now a batch's counts
    come from the rows it changed, and the job is recounted only for an event (here: start and end)."""
    videos = 3000
    worker = await start_worker(worker_settings(settings, youtube, progress_interval_ms=3_600_000))
    list_id = await create_list(client, alice, "Big")
    job_id = await import_ids(client, alice, list_id, video_ids(videos))
    job = await wait_for_terminal(session_maker, job_id)
    assert job["status"] == "completed"
    await worker.stop()  # its connections close, so their statistics reach pg_stat

    await fetch_all(session_maker, "SELECT pg_stat_clear_snapshot()")
    read = await fetch_all(
        session_maker,
        """
        SELECT coalesce(t.seq_tup_read, 0) + coalesce(sum(i.idx_tup_read), 0) AS n
        FROM pg_stat_user_tables AS t JOIN pg_stat_user_indexes AS i USING (relid)
        WHERE t.relname = 'videos' GROUP BY t.seq_tup_read
        """,
    )
    rows_per_video = read[0]["n"] / videos
    # Measured: 6-7 rows per video at 500 and at 3,000 videos; recounting every batch read 96 at 3,000.
    assert rows_per_video < 12, f"{rows_per_video:.0f} rows read per video of a {videos}-video job"


@pytest.mark.settings(job_heartbeat_s=1)
async def test_a_live_worker_in_a_long_batch_is_not_swept(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A batch that outlasts the job's heartbeat (a 429 with Retry-After 3 s against a 1 s heartbeat,
    scaled down from 15 s) keeps its SAQ job alive: a sweep leaves it to its worker."""

    outcome = await run_a_long_batch_then_sweep(client, alice, settings, session_maker, youtube, start_worker)

    assert outcome.swept == [], "SAQ swept (aborted and retried) a job whose worker was alive"
    assert (outcome.job["status"], outcome.attempts, outcome.resumed) == ("completed", 1, False)


@pytest.mark.settings(job_heartbeat_s=1)
async def test_a_failed_heartbeat_write_does_not_stop_the_heartbeat(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One heartbeat write that fails (the database briefly unreachable) is followed by more, so a long
    batch after it is not mistaken for a dead worker."""
    original_update = SaqJob.update
    failures = [psycopg.OperationalError("injected: the server closed the connection")]

    async def update_failing_once(self: SaqJob, **kwargs: Any) -> None:
        if not kwargs and failures:  # a heartbeat (SAQ's own updates pass a status)
            raise failures.pop()
        await original_update(self, **kwargs)

    monkeypatch.setattr(SaqJob, "update", update_failing_once)

    outcome = await run_a_long_batch_then_sweep(client, alice, settings, session_maker, youtube, start_worker)

    assert not failures, "the injected heartbeat failure happened"
    # Whoever sweeps (this test or the worker's own 5 s sweep), a swept job runs a second attempt.
    assert (outcome.job["status"], outcome.attempts, outcome.resumed) == ("completed", 1, False)


@dataclass
class SweepOutcome:
    swept: list[str]
    job: dict[str, Any]
    attempts: int
    resumed: bool


async def run_a_long_batch_then_sweep(
    client: Client,
    alice: Account,
    settings: Settings,
    sessions: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> SweepOutcome:
    """One 50-video batch held up by a 429 with Retry-After 3 s; a sweep once it has run for twice the
    (patched) heartbeat; then the job's end, its SAQ attempts and whether a rerun resumed it."""
    youtube.fail_next(1, status=429, retry_after=3)
    worker = await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Throttled")
    job_id = await import_ids(client, alice, list_id, video_ids(50))
    heartbeat_s = settings.job_heartbeat_s
    await poll_until(
        lambda: saq_job_running_for(worker, job_id),
        lambda running_s: running_s > 2 * heartbeat_s,
        timeout_s=10,
        what="the batch to outlast the heartbeat twice over",
    )
    assert (await job_row(sessions, job_id))["processed"] == 0, "the batch is still in flight"

    swept = await worker.queue.sweep()  # what every worker does every SWEEP_INTERVAL_S
    job = await wait_for_terminal(sessions, job_id)
    saq_job = await poll_until(
        lambda: worker.queue.job(str(job_id)),
        lambda saq_job: saq_job is not None and saq_job.status == Status.COMPLETE,
        what="SAQ to record the job complete",
    )
    assert saq_job is not None
    events = await job_events(sessions, job_id)
    return SweepOutcome(
        swept=swept,
        job=job,
        attempts=saq_job.attempts,
        resumed="Resuming" in [event["message"] for event in events],
    )


async def saq_job_running_for(worker: Worker[Context], job_id: UUID) -> float:
    """Seconds since SAQ started the job's current attempt (0 while it is not active)."""
    saq_job = await worker.queue.job(str(job_id))
    if saq_job is None or saq_job.status != Status.ACTIVE:
        return 0.0
    return (saq_now() - saq_job.started) / 1000
