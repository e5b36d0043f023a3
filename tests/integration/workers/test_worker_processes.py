"""Real `bookmarks workers run` processes, stopped mid-job by SIGKILL (a crash) or SIGTERM (a deploy).

A killed worker's job is found by SAQ's sweep, which any worker runs every `QUEUE_SWEEP_S` (5 s by
default), once the job has not been touched for `JOB_HEARTBEAT_S` (15 s); the sweep then waits 5 s for
the dead worker to acknowledge the abort and retries the job, which the rerun resumes. The kill test
scales both down (3 s and 1 s), so it waits about 10 s instead of 25. A stopped worker hands its job
back at once (SAQ retries it on cancellation).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.settings import Settings
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from tests.integration.workers.conftest import (
    Client,
    Sessions,
    WorkerProcesses,
    assert_counts_match_videos,
    assert_progress_stream,
    create_list,
    import_ids,
    is_unavailable,
    job_events,
    job_row,
    job_videos,
    mixed_ids,
    poll_until,
    user_seqs,
    video_ids,
    wait_for_terminal,
    worker_settings,
)

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test

VIDEOS = 1000
KILL_AT_PROCESSED = 200
API_BATCH = 50
RECOVERY_TIMEOUT_S = 60


def fake_stats(youtube: FakeYouTube) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        return youtube.stats()

    return probe


@pytest.mark.settings(job_heartbeat_s=3, queue_sweep_s=1)
async def test_a_job_survives_its_worker_being_killed(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    worker_processes: WorkerProcesses,
) -> None:
    """A worker SIGKILLed mid-job is swept by the next worker once the job's heartbeat lapses; the job
    resumes and completes, committed batches are never fetched again and the event stream stays whole."""
    ids = mixed_ids(VIDEOS, private=10, deleted=10)
    with FakeYouTube(latency_ms=100) as youtube:
        config = worker_settings(settings, youtube, progress_interval_ms=250)
        first = worker_processes.start(config)
        list_id = await create_list(client, alice, "Big")
        job_id = await import_ids(client, alice, list_id, ids)
        await poll_until(
            lambda: job_row(session_maker, job_id),
            lambda job: job["processed"] >= KILL_AT_PROCESSED,
            what=f"the first worker to process {KILL_AT_PROCESSED} videos",
        )

        first.kill()
        first.wait(timeout=10)
        killed_at = time.monotonic()
        # The fake still answers the dead worker's last request (and counts it): let it finish first.
        await poll_until(
            fake_stats(youtube), lambda stats: stats["in_flight"] == 0, what="no request in flight"
        )
        committed_before_kill = {
            yid
            for yid, video in (await job_videos(session_maker, job_id)).items()
            if video["status"] != "pending"
        }
        served_before_kill = youtube.requests_per_id
        assert KILL_AT_PROCESSED <= len(committed_before_kill) < VIDEOS
        job = await job_row(session_maker, job_id)
        assert job["status"] == "running"

        worker_processes.start(config)
        job = await wait_for_terminal(session_maker, job_id, timeout_s=RECOVERY_TIMEOUT_S)
        served = youtube.requests_per_id
        print(f"the job finished {time.monotonic() - killed_at:.1f} s after its worker was killed")

    assert job["status"] == "completed_with_errors"
    assert (job["total"], job["processed"], job["failed"]) == (VIDEOS, VIDEOS, 20)
    await assert_counts_match_videos(session_maker, job)
    listed = {yid for yid in ids if not is_unavailable(yid)}
    assert set(served) == listed
    assert max(served.values()) <= 2, "an id was fetched more than twice"
    refetched = {yid for yid, count in served.items() if count == 2}
    assert len(refetched) <= API_BATCH, "more than the one in-flight batch was fetched again"
    assert not refetched & committed_before_kill, "committed work was fetched again"
    assert all(served[yid] == 1 for yid in committed_before_kill & listed)
    assert refetched <= set(served_before_kill)
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert [event["message"] for event in events].count("Resuming") == 1
    assert await user_seqs(session_maker, alice.user_id) == list(range(1, len(events) + 1))
    assert Counter(video["status"] for video in (await job_videos(session_maker, job_id)).values()) == {
        "ready": VIDEOS - 20,
        "failed": 20,
    }


async def test_a_stopped_worker_hands_its_job_to_the_next_one_at_once(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    worker_processes: WorkerProcesses,
) -> None:
    """SIGTERM (a deploy) mid-job gives the job back to SAQ at once, with no heartbeat to wait out: the
    next worker resumes it and no committed batch is fetched again."""
    ids = video_ids(VIDEOS)
    with FakeYouTube(latency_ms=100) as youtube:
        config = worker_settings(settings, youtube, progress_interval_ms=250)
        first = worker_processes.start(config)
        list_id = await create_list(client, alice, "Deploy")
        job_id = await import_ids(client, alice, list_id, ids)
        await poll_until(
            lambda: job_row(session_maker, job_id),
            lambda job: job["processed"] >= KILL_AT_PROCESSED,
            what=f"the first worker to process {KILL_AT_PROCESSED} videos",
        )

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        await poll_until(
            fake_stats(youtube), lambda stats: stats["in_flight"] == 0, what="no request in flight"
        )
        committed_before_stop = {
            yid
            for yid, video in (await job_videos(session_maker, job_id)).items()
            if video["status"] != "pending"
        }
        worker_processes.start(config)
        job = await wait_for_terminal(session_maker, job_id, timeout_s=30)
        served = youtube.requests_per_id

    assert (job["status"], job["processed"], job["failed"]) == ("completed", VIDEOS, 0)
    await assert_counts_match_videos(session_maker, job)
    assert set(served) == set(ids)
    assert max(served.values()) <= 2
    assert all(served[yid] == 1 for yid in committed_before_stop)
    assert sum(1 for count in served.values() if count == 2) <= API_BATCH
    events = await job_events(session_maker, job_id)
    assert_progress_stream(events, job)
    assert [event["message"] for event in events].count("Resuming") == 1
    assert await user_seqs(session_maker, alice.user_id) == list(range(1, len(events) + 1))
