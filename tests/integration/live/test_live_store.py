"""EventStore against real Postgres: the cursor reads, replay boundaries, snapshot and history."""

from __future__ import annotations

import re

import msgspec

from app.live.store import EventStore
from db.events import ProgressEvent

from .conftest import Rows

ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def test_head_is_zero_for_a_user_without_events(store: EventStore, rows: Rows) -> None:
    """A user who never had an event has head 0 and an empty stream."""
    user = await rows.user()
    assert await store.head_and_events(user, 0, 10) == (0, [])


async def test_events_after_returns_the_stored_json_in_seq_order(store: EventStore, rows: Rows) -> None:
    """events_after returns (seq, JSON text) after the cursor, in seq order, at most `limit`."""
    user = await rows.user()
    job = await rows.job(user)
    await rows.events(user, job, 5)

    page = await store.events_after(user, 1, 3)

    assert [seq for seq, _ in page] == [2, 3, 4]
    decoded = [msgspec.json.decode(text, type=ProgressEvent) for _, text in page]
    assert [(event.seq, event.job_id, event.processed) for event in decoded] == [
        (2, job, 2),
        (3, job, 3),
        (4, job, 4),
    ]
    assert (await store.head_and_events(user, 3, 10))[0] == 5


async def test_event_by_seq_is_scoped_to_its_user(store: EventStore, rows: Rows) -> None:
    """event(user, seq) finds the user's own event and never another user's with the same seq."""
    owner, other = await rows.user(), await rows.user()
    await rows.event(owner, await rows.job(owner), 7)

    own = await store.event(owner, 1)

    assert own is not None
    assert msgspec.json.decode(own, type=ProgressEvent).processed == 7
    assert await store.event(other, 1) is None


def replayed_seqs(events: list[tuple[int, str]] | None) -> list[int] | None:
    return None if events is None else [seq for seq, _ in events]


async def test_replayable_accepts_exactly_the_retained_window(store: EventStore, rows: Rows) -> None:
    """A cursor resumes when head-limit <= after <= head, and never from the future or below zero."""
    user = await rows.user()
    await rows.events(user, await rows.job(user), 10)

    assert await store.replayable(user, 10, limit=5) == []  # up to date: nothing to send
    assert replayed_seqs(await store.replayable(user, 5, limit=5)) == [6, 7, 8, 9, 10]  # exactly limit
    assert await store.replayable(user, 4, limit=5) is None  # one too many
    assert replayed_seqs(await store.replayable(user, 0, limit=10)) == list(range(1, 11))
    assert await store.replayable(user, 11, limit=5) is None  # ahead of the stream
    assert await store.replayable(user, -1, limit=100) is None


async def test_replayable_refuses_a_cursor_below_the_retention_horizon(store: EventStore, rows: Rows) -> None:
    """When event after+1 was pruned the reader needs a snapshot; after == head needs nothing."""
    user = await rows.user()
    await rows.events(user, await rows.job(user), 6)
    await rows.db.execute("DELETE FROM progress_events WHERE user_id = $1 AND seq <= 3", user)

    assert await store.replayable(user, 2, limit=100) is None
    assert replayed_seqs(await store.replayable(user, 3, limit=100)) == [4, 5, 6]

    await rows.db.execute("DELETE FROM progress_events WHERE user_id = $1", user)
    assert await store.replayable(user, 6, limit=100) == []
    assert await store.replayable(user, 5, limit=100) is None


async def test_snapshot_of_a_new_user_is_empty(store: EventStore, rows: Rows) -> None:
    """A user with no jobs and no events gets S = 0 and an empty job list."""
    user = await rows.user()
    assert await store.snapshot(user) == (0, "[]")


async def test_snapshot_lists_active_and_recent_jobs_in_the_event_shape(
    store: EventStore, rows: Rows
) -> None:
    """The snapshot has S and every queued/running job plus jobs finished within 10 minutes, as events."""
    user, other = await rows.user(), await rows.user()
    queued = await rows.job(user, status="queued", total=0)
    running = await rows.job(user, status="running", total=1000, processed=450, failed=3)
    recent = await rows.job(
        user, status="failed", total=10, processed=4, finished_ago_s=60, last_error="quotaExceeded"
    )
    await rows.job(user, status="completed", total=5, processed=5, finished_ago_s=11 * 60)
    await rows.job(other, status="running")
    await rows.events(user, running, 2)

    seq, jobs_text = await store.snapshot(user)

    jobs = {job.job_id: job for job in msgspec.json.decode(jobs_text, type=list[ProgressEvent])}
    # The snapshot's json_build_object has exactly the struct's fields: none missing, none extra.
    assert all(set(raw) == set(ProgressEvent.__struct_fields__) for raw in msgspec.json.decode(jobs_text))
    assert seq == 2
    assert set(jobs) == {queued, running, recent}
    assert (jobs[running].seq, jobs[running].progress, jobs[running].failed) == (2, 45.0, 3)
    assert (jobs[queued].seq, jobs[queued].status, jobs[queued].progress) == (0, "queued", 100.0)
    assert (jobs[recent].status, jobs[recent].error, jobs[recent].progress) == (
        "failed",
        "quotaExceeded",
        40.0,
    )
    assert all(ISO_MS_UTC.match(job.at) for job in jobs.values())


async def test_snapshot_job_state_is_read_with_the_same_seq(store: EventStore, rows: Rows) -> None:
    """No job in a snapshot claims a seq beyond the snapshot's S (one MVCC snapshot)."""
    user = await rows.user()
    jobs = [await rows.job(user) for _ in range(3)]
    for job in jobs:
        await rows.events(user, job, 3)

    seq, jobs_text = await store.snapshot(user)

    states = msgspec.json.decode(jobs_text, type=list[ProgressEvent])
    assert seq == 9
    assert sorted(state.seq for state in states) == [3, 6, 9]


async def test_job_history_is_paged_and_only_for_the_jobs_owner(store: EventStore, rows: Rows) -> None:
    """job_history pages one job's events by seq, and returns nothing for someone else's job."""
    owner, stranger = await rows.user(), await rows.user()
    job, other_job = await rows.job(owner), await rows.job(owner)
    for processed in range(1, 4):
        await rows.event(owner, job, processed)
        await rows.event(owner, other_job, processed)

    first = await store.job_history(owner, job, 0, 2)
    rest = await store.job_history(owner, job, first[-1][0], 2)

    assert [seq for seq, _ in first + rest] == [1, 3, 5]
    assert {msgspec.json.decode(text, type=ProgressEvent).job_id for _, text in first + rest} == {job}
    assert await store.job_history(stranger, job, 0, 100) == []


async def test_user_history_pages_the_whole_stream(store: EventStore, rows: Rows) -> None:
    """user_history is the user's whole stream, keyset-paged by seq across jobs."""
    user = await rows.user()
    for job in [await rows.job(user), await rows.job(user)]:
        await rows.events(user, job, 2)

    pages = [await store.user_history(user, after, 3) for after in (0, 3)]

    assert [[seq for seq, _ in page] for page in pages] == [[1, 2, 3], [4]]
