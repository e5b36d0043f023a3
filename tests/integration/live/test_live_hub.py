"""The live hub against real Postgres: routing, ref-counted LISTEN, ordering repairs and supervision."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import msgspec
import pytest

from app.live import hub as hub_module
from app.live.hub import (
    APPLICATION_NAME,
    AUTH_CHANNEL,
    CHANNEL_PREFIX,
    REPLAY_FRAMES_REMEMBERED,
    Hub,
    HubClosed,
    Subscription,
    channel_name,
)
from app.live.store import EventStore
from db.events import ProgressEvent

from .conftest import WAIT_S, HubFactory, Rows

WaitUntil = Callable[..., Coroutine[Any, Any, None]]


class Frame(msgspec.Struct, kw_only=True):
    """Any frame the hub yields; event fields are only checked where a test cares."""

    type: str
    seq: int
    jobs: list[ProgressEvent] | None = None
    message: str | None = None
    truncated: bool | None = None


async def next_frames(sub: Subscription, count: int, timeout_s: float = WAIT_S) -> list[Frame]:
    async with asyncio.timeout(timeout_s):
        return [msgspec.json.decode((await sub.next_frame()).text, type=Frame) for _ in range(count)]


async def event_seqs(sub: Subscription, count: int) -> list[int]:
    frames = await next_frames(sub, count)
    assert {frame.type for frame in frames} == {"event"}
    return [frame.seq for frame in frames]


async def terminate_hub_backend(live_dsn: str) -> None:
    admin = await asyncpg.connect(live_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = current_database()",
            APPLICATION_NAME,
        )
    finally:
        await admin.close()
    assert killed == 1


async def test_notifications_reach_only_their_users_subscriber(hub: Hub, rows: Rows) -> None:
    """Each subscriber gets its own user's events and never another user's."""
    alice, bob = await rows.user(), await rows.user()
    alice_sub, bob_sub = await hub.subscribe(alice), await hub.subscribe(bob)
    alice_sub.start_at(0)
    bob_sub.start_at(0)
    alice_job, bob_job = await rows.job(alice), await rows.job(bob)

    await rows.events(alice, alice_job, 2)
    await rows.event(bob, bob_job, 42)
    await rows.event(alice, alice_job, 3)

    assert await event_seqs(alice_sub, 3) == [1, 2, 3]
    bob_frames = await next_frames(bob_sub, 1)
    assert [(frame.seq, frame.message) for frame in bob_frames] == [(1, "Fetched 42 of 1000 videos")]
    assert hub.status().notifications == 4


async def test_listen_is_ref_counted_per_user(hub: Hub, rows: Rows) -> None:
    """The user's channel is LISTENed once for many subscribers and UNLISTENed when the last one leaves."""
    user = await rows.user()
    channel = channel_name(user)

    first, second = await hub.subscribe(user), await hub.subscribe(user)
    assert await hub.listening_channels() == [AUTH_CHANNEL, channel]
    assert (hub.status().channels, hub.status().subscribers) == (1, 2)

    await hub.unsubscribe(first)
    assert await hub.listening_channels() == [AUTH_CHANNEL, channel]

    await hub.unsubscribe(second)
    assert await hub.listening_channels() == [AUTH_CHANNEL]
    assert (hub.status().channels, hub.status().subscribers) == (0, 0)


async def test_the_channel_name_matches_the_trigger_exactly(hub: Hub, rows: Rows) -> None:
    """The hub LISTENs on exactly the channel the trigger notifies (case and hyphens included)."""
    user = await rows.user()
    await hub.subscribe(user)
    trigger_channel = await rows.db.fetchval("SELECT 'progress_user_' || $1::uuid::text", user)
    assert await hub.listening_channels() == [AUTH_CHANNEL, trigger_channel]


async def test_events_up_to_the_start_position_are_not_repeated(hub: Hub, rows: Rows) -> None:
    """Events the socket already sent (seq <= start position) are dropped, later ones delivered."""
    user = await rows.user()
    sub = await hub.subscribe(user)
    job = await rows.job(user)
    await rows.events(user, job, 3)  # notified while the socket is still "reading the table"

    sub.start_at(2)
    await rows.event(user, job, 4)

    assert await event_seqs(sub, 2) == [3, 4]


async def test_a_repeated_notification_is_delivered_once(hub: Hub, rows: Rows) -> None:
    """A notification for a seq already delivered (e.g. re-sent) never reaches the socket twice."""
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    job = await rows.job(user)
    await rows.event(user, job, 1)
    assert await event_seqs(sub, 1) == [1]

    await rows.db.execute(
        "SELECT pg_notify('progress_user_' || $1::uuid::text, data::text) FROM progress_events "
        "WHERE user_id = $1 AND seq = 1",
        user,
    )
    await rows.event(user, job, 2)

    assert await event_seqs(sub, 1) == [2]
    assert sub.position == 2


async def test_a_gap_is_filled_from_the_table_in_order(hub: Hub, rows: Rows) -> None:
    """When a notification skips seqs, the missing events are read from the table and sent first."""
    user = await rows.user()
    job = await rows.job(user)
    await rows.events(user, job, 3)  # committed before anyone listened: never notified to this hub
    sub = await hub.subscribe(user)
    sub.start_at(0)

    await rows.event(user, job, 4)

    assert await event_seqs(sub, 4) == [1, 2, 3, 4]
    assert hub.status().events_caught_up == 3


async def test_an_overflowing_queue_yields_one_snapshot_then_later_events(
    make_hub: HubFactory, rows: Rows, wait_until: WaitUntil
) -> None:
    """A subscriber that falls behind gets one snapshot with S, then events from S + 1, never a gap."""
    hub = await make_hub(queue_size=5)
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    job = await rows.job(user)
    await rows.events(user, job, 20)
    await wait_until(lambda: hub.status().notifications == 20)

    snapshot = (await next_frames(sub, 1))[0]
    await rows.event(user, job, 21)
    after_snapshot = await next_frames(sub, 1)

    assert (snapshot.type, snapshot.seq) == ("snapshot", 20)
    assert snapshot.jobs is not None
    assert [(state.job_id, state.seq) for state in snapshot.jobs] == [(job, 20)]
    assert [(frame.type, frame.seq) for frame in after_snapshot] == [("event", 21)]


async def test_a_truncated_notification_is_completed_from_the_table(hub: Hub, rows: Rows) -> None:
    """An event too large for NOTIFY arrives as a marker and reaches the socket whole."""
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    long_message = "x" * 9000

    await rows.event(user, await rows.job(user), 1, message=long_message)

    [frame] = await next_frames(sub, 1)
    assert (frame.type, frame.seq, frame.truncated) == ("event", 1, None)
    assert frame.message == long_message


async def test_a_killed_listener_reconnects_and_loses_nothing(
    make_hub: HubFactory, rows: Rows, live_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Killing the hub's connection mid-stream: every seq arrives exactly once, in order, via catch-up."""
    caplog.set_level(logging.INFO, logger="app.live.hub")
    hub = await make_hub(backoff_initial_s=0.4)
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    job = await rows.job(user)
    total = 400

    async with asyncio.TaskGroup() as group:
        group.create_task(rows.events(user, job, total))
        received = await event_seqs(sub, 50)
        await terminate_hub_backend(live_dsn)
        received += await event_seqs(sub, total - 50)
    await rows.event(user, job, total + 1)  # queued behind the catch-up marker: the recovery is done
    received += await event_seqs(sub, 1)

    status = hub.status()
    assert received == list(range(1, total + 2))
    assert (status.connected, status.reconnects) == (True, 1)
    assert status.events_caught_up > 0
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1
    assert f"{status.events_caught_up} events caught up" in recovered[0]
    assert await hub.listening_channels() == [AUTH_CHANNEL, channel_name(user)]


async def test_catching_up_too_far_sends_a_snapshot_instead(
    make_hub: HubFactory, rows: Rows, live_dsn: str, wait_until: WaitUntil
) -> None:
    """After an outage that missed more events than the queue holds, the subscriber gets a snapshot."""
    hub = await make_hub(queue_size=5, backoff_initial_s=1.0)
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    job = await rows.job(user)

    await terminate_hub_backend(live_dsn)
    await wait_until(lambda: not hub.status().connected)
    await rows.events(user, job, 20)  # the hub is still waiting out its backoff

    [snapshot] = await next_frames(sub, 1)
    await rows.event(user, job, 21)

    assert (snapshot.type, snapshot.seq) == ("snapshot", 20)
    assert await event_seqs(sub, 1) == [21]
    assert hub.status().reconnects == 1


async def test_a_silently_dead_connection_is_found_by_the_probe(
    live_dsn: str, store: EventStore, rows: Rows
) -> None:
    """A connection that stops answering without closing is detected by the probe and replaced."""
    async with frozen_proxy(live_dsn) as (proxy_dsn, freeze):
        hub = Hub(proxy_dsn, store, probe_interval_s=0.2, backoff_initial_s=0.05)
        await hub.start()
        try:
            user = await rows.user()
            sub = await hub.subscribe(user)
            sub.start_at(0)
            freeze()  # existing connections go silent; new ones still get through

            await rows.event(user, await rows.job(user), 1)

            assert await event_seqs(sub, 1) == [1]  # delivered by the catch-up after the reconnect
            assert (hub.status().reconnects, hub.status().events_caught_up) == (1, 1)
        finally:
            await hub.stop()


async def test_stop_ends_every_subscription(hub: Hub, rows: Rows) -> None:
    """After stop(), a waiting next_frame raises HubClosed and new subscriptions are refused."""
    user = await rows.user()
    sub = await hub.subscribe(user)
    sub.start_at(0)
    waiting = asyncio.create_task(sub.next_frame())

    await hub.stop()

    with pytest.raises(HubClosed):
        async with asyncio.timeout(WAIT_S):
            await waiting
    with pytest.raises(HubClosed):
        await hub.subscribe(user)
    assert not hub.status().connected


async def test_start_fails_when_the_database_is_unreachable(store: EventStore) -> None:
    """A hub that cannot make its first connection raises from start() instead of limping on."""
    hub = Hub("postgresql://postgres@127.0.0.1:1/none", store)
    with pytest.raises(ConnectionRefusedError):
        await hub.start()


# -- a TCP proxy that can go silent, to stand in for a half-open connection --


@contextlib.asynccontextmanager
async def frozen_proxy(dsn: str) -> AsyncIterator[tuple[str, Callable[[], None]]]:
    """Relays to the DSN's server; `freeze()` stops relaying on the connections open at that moment."""
    target = urlsplit(dsn)
    pipes: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(target.hostname, target.port)
        writers.extend([client_writer, server_writer])
        pipes.append(asyncio.create_task(pipe(client_reader, server_writer)))
        pipes.append(asyncio.create_task(pipe(server_reader, client_writer)))

    def freeze() -> None:
        for task in pipes:
            task.cancel()  # no FIN, no RST: the peers just stop hearing from each other
        pipes.clear()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield urlunsplit((target.scheme, f"{target.username}@127.0.0.1:{port}", target.path, "", "")), freeze
    finally:
        freeze()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_a_users_replay_is_read_once_until_the_users_next_notification(
    hub: Hub, rows: Rows, wait_until: WaitUntil, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets of one subscribed user resuming from the same seq share one read of the table; the user's
    next notification ends that, so the next resume reads again and sees the new event."""
    user = await rows.user()
    job = await rows.job(user)
    await rows.events(user, job, 3)
    await hub.subscribe(user)
    reads: list[tuple[object, ...]] = []
    read = hub.store.replayable

    async def counted(*args: Any) -> Any:
        reads.append(args)
        return await read(*args)

    monkeypatch.setattr(hub.store, "replayable", counted)
    first, second = await hub.replayable(user, 1, 100), await hub.replayable(user, 1, 100)
    await rows.event(user, job, 4)
    await wait_until(lambda: hub.status().notifications == 1)
    third = await hub.replayable(user, 1, 100)
    other = await rows.user()
    await hub.replayable(other, 0, 100)
    await hub.replayable(other, 0, 100)

    assert first == second
    assert [seq for seq, _ in first or []] == [2, 3]
    assert [seq for seq, _ in third or []] == [2, 3, 4]
    assert len(reads) == 2 + 2  # the user's two reads; an unsubscribed user's are never remembered


def counted_replay_reads(hub: Hub, monkeypatch: pytest.MonkeyPatch, events: int = 0) -> list[tuple[Any, ...]]:
    """Replaces the store's replay read: each read is recorded and answers `events` made-up events."""
    reads: list[tuple[Any, ...]] = []

    async def replayable(user_id: UUID, after: int, limit: int) -> list[tuple[int, str]]:
        reads.append((user_id, after, limit))
        return [(after + n, '{"seq": 0}') for n in range(1, events + 1)]

    monkeypatch.setattr(hub.store, "replayable", replayable)
    return reads


async def test_remembered_replays_are_bounded_by_the_events_they_hold(
    hub: Hub, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One user asking for many large replays cannot make the hub keep more than REPLAY_FRAMES_REMEMBERED
    events: past it the remembered answers are dropped and read again when asked (was: 10,000 answers of
    up to REPLAY_MAX events each)."""
    user = await rows.user()
    await hub.subscribe(user)
    reads = counted_replay_reads(hub, monkeypatch, events=5000)
    afters = range(1, 41)  # 40 answers of 5,000 events: twice the bound
    for after in afters:
        await hub.replayable(user, after, 5000)
    reads.clear()

    await hub.replayable(user, afters[-1], 5000)
    assert reads == [], "the latest answer is remembered"
    await hub.replayable(user, afters[0], 5000)
    assert len(reads) == 1, "the first was dropped to stay within the bound"
    assert len(afters) * 5000 > REPLAY_FRAMES_REMEMBERED


async def test_an_unlisten_forgets_only_that_channels_replays(
    hub: Hub, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user whose last socket left (its channel UNLISTENed) takes only its own remembered replays along:
    another user's are still answered from memory."""
    staying, leaving = await rows.user(), await rows.user()
    await hub.subscribe(staying)
    leaving_sub = await hub.subscribe(leaving)
    reads = counted_replay_reads(hub, monkeypatch)
    await hub.replayable(staying, 0, 100)
    await hub.replayable(leaving, 0, 100)

    await hub.unsubscribe(leaving_sub)
    assert channel_name(leaving) not in await hub.listening_channels()  # the UNLISTEN is done
    await hub.replayable(staying, 0, 100)

    assert [user for user, _, _ in reads] == [staying, leaving]


# -- re-LISTENing after a reconnect --


def run_at_first_relisten(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Awaitable[object]]) -> None:
    """New asyncpg connections run `action` once, just before their first LISTEN of a user's channel is
    sent: what another task may do while a reconnecting hub awaits its re-LISTEN."""
    pending = [action]

    async def before(query: str) -> None:
        if pending and query.startswith("LISTEN") and CHANNEL_PREFIX in query:
            await pending.pop()()

    class Hooked(asyncpg.Connection):
        async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
            await before(query)
            return await super().execute(query, *args, timeout=timeout)

        async def fetch(
            self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
        ) -> Any:
            await before(query)
            return await super().fetch(query, *args, timeout=timeout, record_class=record_class)

    monkeypatch.setattr(asyncpg, "connect", functools.partial(asyncpg.connect, connection_class=Hooked))


async def test_an_unsubscribe_during_the_relisten_neither_fails_it_nor_leaks_a_channel(
    make_hub: HubFactory,
    rows: Rows,
    live_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    wait_until: WaitUntil,
) -> None:
    """Sockets closing while the hub re-LISTENs after a reconnect (unsubscribe takes no lock): the first
    attempt succeeds, nothing is logged at ERROR, and the channels left without subscribers are UNLISTENed
    (was: "dictionary changed size during iteration", a failed attempt, a retry)."""
    hub = await make_hub(backoff_initial_s=0.05)
    kept, left, also_left = await rows.user(), await rows.user(), await rows.user()
    sub = await hub.subscribe(kept)
    sub.start_at(0)
    leaving = [await hub.subscribe(left), await hub.subscribe(also_left)]

    async def unsubscribe_two() -> None:
        for other in leaving:
            await hub.unsubscribe(other)

    run_at_first_relisten(monkeypatch, unsubscribe_two)
    await terminate_hub_backend(live_dsn)
    await wait_until(lambda: hub.status().reconnects == 1 and hub.status().connected)
    await rows.event(kept, await rows.job(kept), 1)

    assert await event_seqs(sub, 1) == [1]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await hub.listening_channels() == [AUTH_CHANNEL, channel_name(kept)]


async def test_a_reconnect_relistens_every_channel_in_batches(
    make_hub: HubFactory,
    rows: Rows,
    live_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: WaitUntil,
) -> None:
    """With more channels than one batch holds, every channel is LISTENed again after a reconnect, each
    gets its events, and one whose last subscriber leaves afterwards is UNLISTENed as usual."""
    monkeypatch.setattr(hub_module, "LISTEN_BATCH", 2)
    hub = await make_hub(backoff_initial_s=0.05)
    users = [await rows.user() for _ in range(5)]
    subs = [await hub.subscribe(user) for user in users]
    for sub in subs:
        sub.start_at(0)

    await terminate_hub_backend(live_dsn)
    await wait_until(lambda: hub.status().reconnects == 1 and hub.status().connected)
    for user in users:
        await rows.event(user, await rows.job(user), 1)

    for sub in subs:
        assert await event_seqs(sub, 1) == [1]
    assert await hub.listening_channels() == sorted([AUTH_CHANNEL, *map(channel_name, users)])
    await hub.unsubscribe(subs[0])
    assert await hub.listening_channels() == sorted([AUTH_CHANNEL, *map(channel_name, users[1:])])
