"""Every job ends, says truthfully how, and what failed can be retried: hostile answers, rows the
database refuses, outages, failed attempts and their bound, and cancel between attempts (docs/design.md,
"Jobs"; docs/reliability.md, "Hostile upstream")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from app.settings import Settings
from testkit.accounts import Account
from testkit.fake_youtube import HOSTILE_KINDS, FakeYouTube
from testkit.harness import free_port
from tests.integration.workers.conftest import (
    METADATA_FIELDS,
    TERMINAL,
    Client,
    Sessions,
    StartWorker,
    assert_counts_match_videos,
    assert_progress_stream,
    create_list,
    execute,
    import_ids,
    job_events,
    job_row,
    job_videos,
    poll_until,
    post_job_action,
    video_ids,
    wait_for_terminal,
    worker_settings,
)
from workers.processing import AUTO_RETRY_DELAYS_S, MAX_ATTEMPTS
from workers.worker import retry_stopped_jobs
from workers.youtube import REASON_NOT_FOUND_API, REASON_PRIVATE, REASON_UNREADABLE

REFUSE_WRITES = (
    """
    CREATE FUNCTION test_refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'injected: the database refuses every write of a fetched video';
    END;
    $$""",
    """
    CREATE TRIGGER test_refuse_writes BEFORE UPDATE ON videos FOR EACH ROW
        WHEN (NEW.status IN ('ready', 'failed')) EXECUTE FUNCTION test_refuse_writes()""",
)
"""Makes every batch commit fail (a failed attempt) while a cancel (status `cancelled`) still works."""


async def refuse_writes(sessions: Sessions) -> None:
    for statement in REFUSE_WRITES:
        await execute(sessions, statement)


async def test_hostile_answers_fail_only_the_poisoned_videos(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A 300-video import with one id of every hostile kind per batch ends terminal: the unreadable item
    and the item answering for another id fail alone, every other video is ready with exactly what a
    correct client makes of it (poison cleaned out), and the counters equal the videos."""
    hostile = [f"{kind}{number:08d}" for number in range(6) for kind in HOSTILE_KINDS]
    ids = hostile + video_ids(300 - len(hostile))
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Hostile")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed_with_errors"
    videos = await job_videos(session_maker, job_id)
    failed = {yid: video["error"] for yid, video in videos.items() if video["status"] == "failed"}
    assert failed == {
        yid: REASON_UNREADABLE if yid.startswith("zsu") else REASON_NOT_FOUND_API
        for yid in ids
        if FakeYouTube.expected_failure(yid)
    }
    for youtube_id, video in videos.items():
        if youtube_id not in failed:
            expected = FakeYouTube.expected(youtube_id)
            assert video["status"] == "ready"
            assert {name: video[name] for name in (*METADATA_FIELDS, "channel_id")} == {
                name: expected[name] for name in (*METADATA_FIELDS, "channel_id")
            }, youtube_id
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"ready": 288, "failed": 12}
    assert youtube.stats()["api_requests"] == 6, "one request per batch: nothing was retried"
    print(f"hostile: {job['status']}, {counts}, failed kinds {sorted({yid[:3] for yid in failed})}")
    assert_progress_stream(await job_events(session_maker, job_id), job)


async def test_a_row_the_database_refuses_fails_that_video_alone(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """When the database refuses a batch because of one row, the batch is written row by row: that video
    fails with a reason a person can read, the other 49 are ready, and the job completes."""
    ids = video_ids(50)
    poisoned = ids[7]
    await execute(
        session_maker,
        f"ALTER TABLE videos ADD CONSTRAINT test_poison CHECK (title IS DISTINCT FROM 'Video {poisoned}')",
    )
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Refused")

    job_id = await import_ids(client, alice, list_id, ids)
    job = await wait_for_terminal(session_maker, job_id)

    assert job["status"] == "completed_with_errors"
    videos = await job_videos(session_maker, job_id)
    assert {yid for yid, video in videos.items() if video["status"] == "failed"} == {poisoned}
    assert videos[poisoned]["error"] == "YouTube sent metadata that could not be stored (CheckViolationError)"
    assert videos[poisoned]["title"] is None
    assert await assert_counts_match_videos(session_maker, job) == {"ready": 49, "failed": 1}
    assert job["last_error"] == f"{poisoned}: {videos[poisoned]['error']}"


async def test_a_job_whose_videos_all_failed_ends_failed(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Every video failed (private): the job is `failed`, not `completed_with_errors`, and says so once."""
    await start_worker(worker_settings(settings, youtube, api=False))
    list_id = await create_list(client, alice, "Private")

    job_id = await import_ids(client, alice, list_id, video_ids(5, kind="prv"))
    job = await wait_for_terminal(session_maker, job_id)

    assert (job["status"], job["processed"], job["failed"]) == ("failed", 5, 5)
    assert job["message"] == "All 5 videos failed"
    assert job["next_attempt_at"] is None, "a verdict on the videos is not retried automatically"
    events = await job_events(session_maker, job_id)
    assert events[-1]["error"] == f"{video_ids(5, kind='prv')[-1]}: {REASON_PRIVATE}"
    assert events[-1]["message"] != events[-1]["error"]


async def test_an_outage_stops_the_job_and_the_automatic_retry_completes_it(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    start_worker: StartWorker,
) -> None:
    """With YouTube's port closed, a 200-video job ends `failed` (no video failed, all 200 pending) with
    a message that says so and when it is retried; once YouTube is back, the retry cron completes it."""
    port = free_port()
    closed = FakeYouTube(port=port)
    closed.stop()  # bound and released: nothing listens on the port now
    worker = await start_worker(worker_settings(settings, closed))
    list_id = await create_list(client, alice, "Outage")

    job_id = await import_ids(client, alice, list_id, video_ids(200))
    job = await wait_for_terminal(session_maker, job_id, timeout_s=60)

    assert job["status"] == "failed"
    counts = await assert_counts_match_videos(session_maker, job)
    assert counts == {"pending": 200}
    took_s = (job["finished_at"] - job["started_at"]).total_seconds()
    print(f"outage: 200-video job failed {took_s:.1f} s after it started; {counts}")  # docs/reliability.md
    assert job["message"] == "YouTube could not be reached: 200 videos wait for the automatic retry"
    assert "could not reach YouTube (ConnectError)" in job["last_error"]
    first_retry = job["finished_at"] + timedelta(seconds=AUTO_RETRY_DELAYS_S[0])
    assert abs((job["next_attempt_at"] - first_retry).total_seconds()) < 1
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert events[-1]["next_attempt_at"] is not None
    assert await retry_stopped_jobs(worker.context) == 0, "not due yet"

    with FakeYouTube(port=port) as youtube:
        await execute(
            session_maker,
            "UPDATE jobs SET next_attempt_at = now() - interval '1 second' WHERE id = :id",
            id=job_id,
        )
        assert await retry_stopped_jobs(worker.context) == 1
        retry = (
            (await job_row(session_maker, job_id))["next_attempt_at"],
            await retry_of(session_maker, job_id),
        )
        assert retry[0] is None, "the stopped job's automatic retry is taken"
        retried = await wait_for_terminal(session_maker, retry[1])

        assert (retried["status"], retried["total"], retried["processed"]) == ("completed", 200, 200)
        print(f"outage: the automatic retry completed {retried['processed']} of {retried['total']}")
        assert (retried["kind"], retried["auto_retries"]) == ("retry", 1)
        assert retried["source"] == "automatic retry of 200 pasted links"
        assert set(youtube.requests_per_id) == set(video_ids(200))


async def retry_of(sessions: Sessions, job_id: UUID) -> UUID:
    rows = await poll_until(
        lambda: _jobs_retrying(sessions, job_id), bool, what=f"a retry of job {job_id}", timeout_s=5
    )
    return rows[0]


async def _jobs_retrying(sessions: Sessions, job_id: UUID) -> list[UUID]:
    from tests.integration.workers.conftest import fetch_all

    rows = await fetch_all(sessions, "SELECT id FROM jobs WHERE retry_of = :id", id=job_id)
    return [row["id"] for row in rows]


async def test_cancel_between_two_attempts_is_terminal_at_once(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A job whose attempt failed waits for its next one; cancelling it then ends it in the cancel's own
    transaction (its terminal event exists when the answer arrives), and the worker stops waiting."""
    await refuse_writes(session_maker)
    worker = await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Waiting")
    job_id = await import_ids(client, alice, list_id, video_ids(60))
    waiting = await poll_until(
        lambda: job_row(session_maker, job_id),
        lambda job: job["next_attempt_at"] is not None,
        what="the job to wait for its second attempt",
    )
    assert (waiting["status"], waiting["attempts"]) == ("running", 1)
    assert "injected" in waiting["last_error"]
    assert waiting["message"] == f"Attempt 1 of {MAX_ATTEMPTS} failed; trying again shortly"

    cancelled = await post_job_action(client, alice, job_id, "cancel")

    assert cancelled["status"] == "cancelled"
    events = await job_events(session_maker, job_id)
    assert (events[-1]["status"], events[-1]["next_attempt_at"]) == ("cancelled", None)
    job = await job_row(session_maker, job_id)
    assert await assert_counts_match_videos(session_maker, job) == {"cancelled": 60}
    saq_job = await poll_until(
        lambda: worker.queue.job(str(job_id)),
        lambda saq_job: saq_job is not None and saq_job.status == "complete",
        what="the worker to stop waiting",
    )
    assert saq_job is not None and saq_job.result == "stopped"
    assert (await job_row(session_maker, job_id))["attempts"] == 1, "no further attempt ran"


async def test_attempts_are_bounded_then_the_job_fails_with_its_cause(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A job on its last allowed attempt that fails again ends `failed` with the cause, its videos still
    pending; a job past the bound (rerun by SAQ or the stranded-job cron) ends `failed` without a fetch."""
    await refuse_writes(session_maker)
    list_id = await create_list(client, alice, "Bounded")
    last_try = await import_ids(client, alice, list_id, video_ids(50))
    past_bound = await import_ids(client, alice, list_id, video_ids(50, start=50))
    await execute(
        session_maker, "UPDATE jobs SET attempts = :n WHERE id = :id", n=MAX_ATTEMPTS - 1, id=last_try
    )
    await execute(
        session_maker,
        "UPDATE jobs SET attempts = :n, status = 'running', last_error = 'KeyError: boom' WHERE id = :id",
        n=MAX_ATTEMPTS,
        id=past_bound,
    )
    await start_worker(worker_settings(settings, youtube))

    failed = await wait_for_terminal(session_maker, last_try)
    gave_up = await wait_for_terminal(session_maker, past_bound)

    expected = f"Stopped after {MAX_ATTEMPTS} attempts without progress; 50 videos wait for a retry"
    assert (failed["status"], failed["message"]) == ("failed", expected)
    assert "injected: the database refuses" in failed["last_error"]
    assert await assert_counts_match_videos(session_maker, failed) == {"pending": 50}
    assert (gave_up["status"], gave_up["message"], gave_up["last_error"]) == (
        "failed",
        expected,
        "KeyError: boom",
    )
    assert youtube.requests == 1, "only the last allowed attempt fetched"
    assert failed["next_attempt_at"] is None and gave_up["next_attempt_at"] is None
    assert datetime.now(UTC) - failed["finished_at"] < timedelta(minutes=1)


async def _stop_by_outage(youtube: FakeYouTube, sessions: Sessions) -> None:
    # Retry-After 0: the client's retries of a 5xx take no time, then the fetch is an outage.
    youtube.fail_next(50, status=503, retry_after=0)


async def _stop_by_quota(youtube: FakeYouTube, sessions: Sessions) -> None:
    youtube.fail_next(1, status=403, reason="quotaExceeded")


async def _stop_by_failed_attempt(youtube: FakeYouTube, sessions: Sessions) -> None:
    await refuse_writes(sessions)


@pytest.mark.parametrize(
    "stop", [_stop_by_outage, _stop_by_quota, _stop_by_failed_attempt], ids=["outage", "quota", "attempt"]
)
async def test_a_cancel_during_a_fetch_wins_over_what_stops_the_job(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
    stop: Callable[[FakeYouTube, Sessions], Awaitable[None]],
) -> None:
    """A Cancel that arrives while a fetch is in flight, which then ends in an outage, the spent quota or
    a failed attempt, ends the job `cancelled` (its terminal event says so, no wait, no automatic retry);
    a stopped job flagged cancelled is never retried by the cron."""
    youtube.hold_next(1)
    await stop(youtube, session_maker)
    worker = await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Cancelled mid-fetch")
    job_id = await import_ids(client, alice, list_id, video_ids(50))
    await poll_until(lambda: _held(youtube), bool, what="the job's first request to be in flight")

    flagged = await post_job_action(client, alice, job_id, "cancel")
    youtube.release()
    job = await wait_for_terminal(session_maker, job_id)

    assert flagged["status"] == "running", "a running job is flagged, then stops"
    assert (job["status"], job["next_attempt_at"]) == ("cancelled", None)
    assert job["message"] == "Cancelled after 0 of 50 videos"
    assert await assert_counts_match_videos(session_maker, job) == {"cancelled": 50}
    events = await job_events(session_maker, job_id)
    assert (events[-1]["status"], events[-1]["next_attempt_at"]) == ("cancelled", None)
    assert [event["status"] for event in events] == ["running", "cancelled"], "no wait, no failed attempt"
    await execute(
        session_maker,
        "UPDATE jobs SET status = 'failed', next_attempt_at = now() - interval '1 second' WHERE id = :id",
        id=job_id,
    )
    assert await retry_stopped_jobs(worker.context) == 0, "what a person cancelled waits for their Retry"


async def _held(youtube: FakeYouTube) -> bool:
    return youtube.held > 0


async def test_a_rerun_of_a_job_flagged_cancelled_ends_it_cancelled(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A running job flagged cancelled whose worker died, rerun past its bound of attempts, ends
    `cancelled` (not `failed`) without a fetch."""
    list_id = await create_list(client, alice, "Rerun cancelled")
    job_id = await import_ids(client, alice, list_id, video_ids(20))
    await execute(
        session_maker,
        "UPDATE jobs SET attempts = :n, status = 'running', cancel_requested = true WHERE id = :id",
        n=MAX_ATTEMPTS,
        id=job_id,
    )
    await start_worker(worker_settings(settings, youtube))

    job = await wait_for_terminal(session_maker, job_id)

    assert (job["status"], job["attempts"]) == ("cancelled", MAX_ATTEMPTS)
    assert await assert_counts_match_videos(session_maker, job) == {"cancelled": 20}
    assert youtube.requests == 0


REFUSE_STARTS = (
    """
    CREATE FUNCTION test_refuse_starts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'injected: the database refuses every start of a job';
    END;
    $$""",
    """
    CREATE TRIGGER test_refuse_starts BEFORE UPDATE ON jobs FOR EACH ROW
        WHEN (NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at) EXECUTE FUNCTION test_refuse_starts()""",
)
"""Makes every start of a job fail (it sets `heartbeat_at`) while counting, waiting and ending work."""


async def test_a_start_that_always_fails_counts_its_attempts_and_ends_failed(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A failure inside a job's start still counts as an attempt: a fresh job waits for its second one
    (and a Cancel then ends it at once), and a job on its last allowed attempt ends `failed` with the
    cause, instead of being rerun without bound."""
    for statement in REFUSE_STARTS:
        await execute(session_maker, statement)
    list_id = await create_list(client, alice, "Unstartable")
    last_try = await import_ids(client, alice, list_id, video_ids(10))
    fresh = await import_ids(client, alice, list_id, video_ids(10, start=10))
    await execute(
        session_maker, "UPDATE jobs SET attempts = :n WHERE id = :id", n=MAX_ATTEMPTS - 1, id=last_try
    )
    await start_worker(worker_settings(settings, youtube))

    failed = await wait_for_terminal(session_maker, last_try)
    waiting = await poll_until(
        lambda: job_row(session_maker, fresh),
        lambda job: job["next_attempt_at"] is not None,
        what="the fresh job to wait for its second attempt",
    )

    expected = f"Stopped after {MAX_ATTEMPTS} attempts without progress; 10 videos wait for a retry"
    assert (failed["status"], failed["message"], failed["attempts"]) == ("failed", expected, MAX_ATTEMPTS)
    assert "injected: the database refuses every start" in failed["last_error"]
    assert await assert_counts_match_videos(session_maker, failed) == {"pending": 10}
    assert (waiting["status"], waiting["attempts"]) == ("running", 1)
    assert waiting["message"] == f"Attempt 1 of {MAX_ATTEMPTS} failed; trying again shortly"
    assert (await post_job_action(client, alice, fresh, "cancel"))["status"] == "cancelled"
    assert youtube.requests == 0


async def test_a_control_character_in_youtubes_error_text_stops_the_job_cleanly(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """A NUL byte in the reason of an error YouTube answers is cleaned out: the job stops `failed` with a
    message the database takes, instead of a failed attempt."""
    youtube.fail_next(1, status=400, reason="odd\x00Reason")
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Odd error")

    job = await wait_for_terminal(session_maker, await import_ids(client, alice, list_id, video_ids(10)))

    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["message"].startswith("YouTube API request failed with HTTP 400 (oddReason: ")
    assert job["last_error"] == "YouTube API answered oddReason"
    assert await assert_counts_match_videos(session_maker, job) == {"pending": 10}


async def test_a_database_error_that_is_no_refused_value_fails_the_attempt_not_the_videos(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    youtube: FakeYouTube,
    start_worker: StartWorker,
) -> None:
    """Only a value the database refuses (SQLSTATE classes 22 and 23) fails its video; any other error
    on a batch's write (here a trigger's RAISE, P0001) fails the attempt, and the videos stay pending."""
    await execute(
        session_maker,
        """CREATE FUNCTION test_break_ready() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected: not a refused value'; END; $$""",
    )
    await execute(
        session_maker,
        """CREATE TRIGGER test_break_ready BEFORE UPDATE ON videos FOR EACH ROW
        WHEN (NEW.status = 'ready') EXECUTE FUNCTION test_break_ready()""",
    )
    await start_worker(worker_settings(settings, youtube))
    list_id = await create_list(client, alice, "Broken writes")
    job_id = await import_ids(client, alice, list_id, video_ids(5))

    waiting = await poll_until(
        lambda: job_row(session_maker, job_id),
        lambda job: job["status"] in TERMINAL or job["next_attempt_at"] is not None,
        what="the job to fail its attempt",
    )

    assert (waiting["status"], waiting["attempts"]) == ("running", 1)
    assert "injected: not a refused value" in waiting["last_error"]
    assert await assert_counts_match_videos(session_maker, waiting) == {"pending": 5}
    assert (await post_job_action(client, alice, job_id, "cancel"))["status"] == "cancelled"
