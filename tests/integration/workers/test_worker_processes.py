"""Real `bookmarks workers run` processes: a worker SIGKILLed mid-job and a new one that finishes the job.

SAQ notices a dead worker only in a sweep (at a worker's start, then every 60 s) once the job's
heartbeat has expired (`workers.queue.HEARTBEAT_S`, 60 s). With the real setting recovery takes 60 to
~130 s, so the default run shortens the heartbeat of the enqueued job (the app enqueues in this process)
and starts the new worker once SAQ considers the job stuck: its startup sweep retries the job at once.
The `slow` test runs the same scenario with the real heartbeat.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from saq.queue.postgres import PostgresQueue

from app.settings import Settings
from tests.conftest import Account
from tests.fakes.youtube import FakeYouTube
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
    wait_for_terminal,
    worker_settings,
)
from workers import queue as job_queue_module
from workers.queue import make_saq_queue

VIDEOS = 1000
KILL_AT_PROCESSED = 200
SHORT_HEARTBEAT_S = 3
API_BATCH = 50


def fake_stats(youtube: FakeYouTube) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        return youtube.stats()

    return probe


async def saq_job_is_stuck(saq_queue: PostgresQueue, job_id: UUID) -> bool:
    saq_job = await saq_queue.job(str(job_id))
    assert saq_job is not None
    return bool(saq_job.stuck)


async def kill_mid_job_then_recover(
    client: Client,
    alice: Account,
    settings: Settings,
    sessions: Sessions,
    processes: WorkerProcesses,
    *,
    wait_until_stuck: bool,
    recovery_timeout_s: float,
) -> None:
    """The scenario: import, SIGKILL the worker mid-job, start another, check nothing was lost or redone."""
    ids = mixed_ids(VIDEOS, private=10, deleted=10)
    with FakeYouTube(latency_ms=100) as youtube:
        config = worker_settings(settings, youtube, progress_interval_ms=250)
        first = processes.start(config)
        list_id = await create_list(client, alice, "Big")
        job_id = await import_ids(client, alice, list_id, ids)
        await poll_until(
            lambda: job_row(sessions, job_id),
            lambda job: job["processed"] >= KILL_AT_PROCESSED,
            what=f"the first worker to process {KILL_AT_PROCESSED} videos",
        )

        first.kill()
        first.wait(timeout=10)
        killed_at = time.monotonic()
        committed_before_kill = {
            yid for yid, video in (await job_videos(sessions, job_id)).items() if video["status"] != "pending"
        }
        # The fake still answers the dead worker's last request (and counts it): let it finish first.
        await poll_until(
            fake_stats(youtube), lambda stats: stats["in_flight"] == 0, what="no request in flight"
        )
        served_before_kill = youtube.requests_per_id
        assert KILL_AT_PROCESSED <= len(committed_before_kill) < VIDEOS
        job = await job_row(sessions, job_id)
        assert job["status"] == "running"

        if wait_until_stuck:
            saq_queue = make_saq_queue(settings.dsn, max_connections=2)
            await saq_queue.connect()
            try:
                await poll_until(
                    lambda: saq_job_is_stuck(saq_queue, job_id),
                    bool,
                    timeout_s=SHORT_HEARTBEAT_S + 10,
                    what="SAQ to consider the dead worker's job stuck",
                )
            finally:
                await saq_queue.disconnect()
        processes.start(config)
        job = await wait_for_terminal(sessions, job_id, timeout_s=recovery_timeout_s)
        served = youtube.requests_per_id
        print(f"the job finished {time.monotonic() - killed_at:.1f} s after its worker was killed")

    assert job["status"] == "completed_with_errors"
    assert (job["total"], job["processed"], job["failed"]) == (VIDEOS, VIDEOS, 20)
    await assert_counts_match_videos(sessions, job)
    listed = {yid for yid in ids if not is_unavailable(yid)}
    assert set(served) == listed
    assert max(served.values()) <= 2, "an id was fetched more than twice"
    refetched = {yid for yid, count in served.items() if count == 2}
    assert len(refetched) <= API_BATCH, "more than the one in-flight batch was fetched again"
    assert not refetched & committed_before_kill, "committed work was fetched again"
    assert all(served[yid] == 1 for yid in committed_before_kill & listed)
    assert refetched <= set(served_before_kill)
    events = await job_events(sessions, job_id)
    assert_progress_stream(events, job)
    assert [event["message"] for event in events].count("Resuming") == 1
    assert await user_seqs(sessions, alice.user_id) == list(range(1, len(events) + 1))
    assert Counter(video["status"] for video in (await job_videos(sessions, job_id)).values()) == {
        "ready": VIDEOS - 20,
        "failed": 20,
    }


async def test_a_job_survives_its_worker_being_killed(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    worker_processes: WorkerProcesses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker SIGKILLed mid-job is swept by the next worker once the job's heartbeat expires; the job
    resumes and completes, committed batches are never fetched again and the event stream stays whole."""
    monkeypatch.setattr(job_queue_module, "HEARTBEAT_S", SHORT_HEARTBEAT_S)
    await kill_mid_job_then_recover(
        client,
        alice,
        settings,
        session_maker,
        worker_processes,
        wait_until_stuck=True,
        recovery_timeout_s=30,
    )


@pytest.mark.slow
async def test_a_job_survives_its_worker_being_killed_with_the_real_heartbeat(
    client: Client,
    alice: Account,
    settings: Settings,
    session_maker: Sessions,
    worker_processes: WorkerProcesses,
) -> None:
    """With the production heartbeat (60 s) a new worker started right after the kill still finishes the
    job, at its first sweep after the heartbeat expires (60 s sweep period: ~65 to ~130 s)."""
    await kill_mid_job_then_recover(
        client,
        alice,
        settings,
        session_maker,
        worker_processes,
        wait_until_stuck=False,
        recovery_timeout_s=180,
    )
