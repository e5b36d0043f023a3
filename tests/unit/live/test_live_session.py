"""The progress WebSocket protocol, driven through a fake socket, hub and store (no database)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest

from app.live.frames import Frame, event_frame, snapshot_frame
from app.live.hub import Credential, HubClosed, Revoked
from app.live.session import (
    Identity,
    RateLimited,
    SessionResult,
    SocketDisconnected,
    SocketRegistry,
    run_progress_session,
)
from app.live.store import EventStore

WAIT_S = 5.0
TOKEN = "sybm_secret-token-value"
ALICE = UUID("00000000-0000-7000-8000-00000000a11c")
TOKEN_ID = UUID("00000000-0000-7000-8000-0000000070c1")


def stored_event(seq: int) -> str:
    """An event as the store and the trigger render it (the fields the session never looks into)."""
    return f'{{"at": "2026-11-29T10:00:00.000Z", "seq": {seq}, "status": "running", "processed": {seq}}}'


class SentFrame(msgspec.Struct, kw_only=True):
    type: str
    seq: int | None = None
    resumed: bool | None = None
    jobs: list[dict[str, object]] | None = None


# -- fakes --

_GONE = object()


class FakeSocket:
    """An accepted WebSocket: the test plays the client through `say`, `leave` and `next_sent`."""

    def __init__(self, *, stall_after: int | None = None) -> None:
        self._incoming: asyncio.Queue[object] = asyncio.Queue()
        self._sent: asyncio.Queue[str] = asyncio.Queue()
        self.stall_after = stall_after
        """Sends after this many frames never complete (a client that stopped reading)."""
        self.sent_count = 0
        self.closed: tuple[int, str] | None = None

    def say(self, message: object) -> None:
        text = message if isinstance(message, str) else msgspec.json.encode(message).decode()
        self._incoming.put_nowait(text)

    def leave(self) -> None:
        self._incoming.put_nowait(_GONE)

    async def next_sent(self) -> SentFrame:
        async with asyncio.timeout(WAIT_S):
            return msgspec.json.decode(await self._sent.get(), type=SentFrame)

    async def next_sent_texts(self, count: int) -> list[str]:
        async with asyncio.timeout(WAIT_S):
            return [await self._sent.get() for _ in range(count)]

    def nothing_more_sent(self) -> bool:
        return self._sent.empty()

    async def receive_text(self) -> str:
        message = await self._incoming.get()
        if message is _GONE:
            raise SocketDisconnected
        assert isinstance(message, str)
        return message

    async def send_text(self, data: str) -> None:
        if self.stall_after is not None and self.sent_count >= self.stall_after:
            await asyncio.Event().wait()
        self.sent_count += 1
        self._sent.put_nowait(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)


class FakeSubscription:
    def __init__(self, user_id: UUID, credential: Credential | None) -> None:
        self.user_id = user_id
        self.credential = credential
        self.started_at: int | None = None
        self._frames: asyncio.Queue[Frame | Exception] = asyncio.Queue()

    def push(self, frame: Frame) -> None:
        self._frames.put_nowait(frame)

    def end(self) -> None:
        self._frames.put_nowait(HubClosed())

    def revoke(self, reason: str) -> None:
        self._frames.put_nowait(Revoked(reason))

    def start_at(self, seq: int) -> None:
        self.started_at = seq

    async def next_frame(self) -> Frame:
        frame = await self._frames.get()
        if isinstance(frame, Exception):
            raise frame
        return frame


class FakeHub:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.closed = False
        self.subscriptions: list[FakeSubscription] = []
        self.subscribed = asyncio.Event()
        self.active: set[FakeSubscription] = set()
        self.auth_epoch = 7
        self.refuse_with: Revoked | None = None

    async def subscribe(self, user_id: UUID, credential: Credential | None = None) -> FakeSubscription:
        if self.closed:
            raise HubClosed
        if self.refuse_with is not None:
            raise self.refuse_with
        self.calls.append("subscribe")
        sub = FakeSubscription(user_id, credential)
        self.subscriptions.append(sub)
        self.active.add(sub)
        self.subscribed.set()
        return sub

    async def unsubscribe(self, sub: FakeSubscription) -> None:
        self.calls.append("unsubscribe")
        self.active.discard(sub)


class FakeStore(EventStore):
    """A user's retained stream: seqs retained_from..last_seq, plus a fixed snapshot job list. Its reads
    are fakes; the rule of when a cursor may resume (`replayable`) is the real store's."""

    def __init__(self, calls: list[str], *, head: int = 0, retained_from: int = 1) -> None:
        self.calls = calls
        self.last_seq = head
        self.retained_from = retained_from
        self.jobs = '[{"job_id": "j1", "seq": 0}]'
        self.fail_with: Exception | None = None

    async def head_and_events(
        self, user_id: UUID, after: int, limit: int
    ) -> tuple[int, list[tuple[int, str]]]:
        self.calls.append("head_and_events")
        first = max(after + 1, self.retained_from)
        return self.last_seq, [(seq, stored_event(seq)) for seq in range(first, self.last_seq + 1)][:limit]

    async def snapshot(self, user_id: UUID, *, recent_s: float = 0) -> tuple[int, str]:
        self.calls.append("snapshot")
        if self.fail_with is not None:
            raise self.fail_with
        return self.last_seq, self.jobs


async def known_tokens(token: str) -> Identity | None:
    return Identity(ALICE, TOKEN_ID) if token == TOKEN else None


class Harness:
    """One session under test, running in its own task."""

    def __init__(
        self,
        *,
        head: int = 0,
        retained_from: int = 1,
        replay_max: int = 100,
        sockets: SocketRegistry | None = None,
        stall_after: int | None = None,
    ) -> None:
        self.calls: list[str] = []
        self.socket = FakeSocket(stall_after=stall_after)
        self.hub = FakeHub(self.calls)
        self.store = FakeStore(self.calls, head=head, retained_from=retained_from)
        self.sockets = sockets if sockets is not None else SocketRegistry(limit_per_user=20)
        self.replay_max = replay_max
        self._task: asyncio.Task[SessionResult] | None = None

    def start(self, **options: object) -> None:
        settings: dict[str, object] = {
            "hub": self.hub,
            "store": self.store,
            "authenticate": known_tokens,
            "sockets": self.sockets,
            "replay_max": self.replay_max,
            "hello_timeout_s": 0.2,
            "send_timeout_s": 0.2,
        }
        settings.update(options)
        self._task = asyncio.create_task(run_progress_session(self.socket, **settings))  # type: ignore[arg-type]

    async def result(self) -> SessionResult:
        assert self._task is not None
        async with asyncio.timeout(WAIT_S):
            return await self._task

    async def abandon(self) -> None:
        """Cancels a session the test left running, as a server shutting down would."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=WAIT_S)

    async def live(self, after: int | None = None) -> FakeSubscription:
        """Says hello and reads up to `ready`: the session is then streaming."""
        self.start()
        self.socket.say({"type": "hello", "token": TOKEN, "after": after})
        while (await self.socket.next_sent()).type != "ready":
            pass
        return self.hub.subscriptions[-1]


MakeHarness = Callable[..., Harness]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    """Builds harnesses and cancels any session still running when the test ends (none may outlive it)."""
    created: list[Harness] = []

    def make(**options: Any) -> Harness:
        harness = Harness(**options)
        created.append(harness)
        return harness

    yield make
    for harness in created:
        await harness.abandon()


# -- hello and admission --


async def test_no_hello_in_time_closes_1008(make_harness: MakeHarness) -> None:
    """A client that says nothing within the hello timeout breaks the protocol (1008, not 4401: no token
    was checked, so a client must not forget its token)."""
    harness = make_harness()
    harness.start()

    result = await harness.result()

    assert harness.socket.closed == (1008, "no hello within 0.2 s")
    assert result.close_code == 1008
    assert harness.calls == []


async def test_invalid_json_closes_1008(make_harness: MakeHarness) -> None:
    """A first frame that is not JSON is a bad message."""
    harness = make_harness()
    harness.start()
    harness.socket.say("{not json")

    await harness.result()

    assert harness.socket.closed == (1008, "bad message")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "ping"},
        {"token": TOKEN},
        {"type": "hello", "token": TOKEN, "after": "12"},
        {"type": "hello", "token": 12},
        [TOKEN],
    ],
)
async def test_a_first_message_that_is_not_a_hello_closes_1008(
    make_harness: MakeHarness, message: object
) -> None:
    """Well-formed JSON that is not a valid hello is a bad message (no token was checked: not 4401)."""
    harness = make_harness()
    harness.start()
    harness.socket.say(message)

    await harness.result()

    assert harness.socket.closed == (1008, "expected a hello")
    assert "subscribe" not in harness.calls


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [("wrong", 4401, "unknown, revoked or expired token"), (None, 1008, "no token")],
)
async def test_a_bad_token_closes_4401_and_a_missing_one_1008(
    make_harness: MakeHarness, token: str | None, code: int, reason: str
) -> None:
    """An unknown token closes with 4401 (it was checked); a hello without one is a bad message (1008: only
    a token check may send 4401, the code on which clients forget their token). Nothing is subscribed."""
    harness = make_harness()
    harness.start()
    harness.socket.say({"type": "hello", "token": token, "after": None})

    result = await harness.result()

    assert harness.socket.closed == (code, reason)
    assert (result.user_id, harness.calls) == (None, [])


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "hello", "token": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"type": "hello", "token": "sybm_x", "after": ' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}",
    ],
    ids=["deep token", "deep array", "deep after"],
)
async def test_a_deeply_nested_hello_closes_1008_without_an_error_log(
    make_harness: MakeHarness, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON nested far deeper than any hello is a bad message (1008), not a server failure (1011)."""
    harness = make_harness()
    harness.start()
    harness.socket.say(message)

    result = await harness.result()

    assert result.close_code == 1008
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("after", [2**31, 2**63 - 1, 2**63, 2**64, 10**30])
async def test_an_after_beyond_any_stream_gets_a_snapshot(make_harness: MakeHarness, after: int) -> None:
    """A cursor far beyond the head (past int4, past bigint, past uint64) gets a snapshot, not an error."""
    harness = make_harness(head=5)
    harness.start()
    harness.socket.say(f'{{"type": "hello", "token": "{TOKEN}", "after": {after}}}')

    assert (await harness.socket.next_sent()).type == "snapshot"
    ready = await harness.socket.next_sent()
    assert (ready.type, ready.seq, ready.resumed) == ("ready", 5, False)
    harness.socket.leave()
    await harness.result()


async def test_a_rate_limited_token_check_closes_4430_not_4401(make_harness: MakeHarness) -> None:
    """A token check refused by a limit closes with 4430 and says when to retry: the token is not judged."""

    async def limited(token: str) -> Identity | None:
        raise RateLimited(12)

    harness = make_harness()
    harness.start(authenticate=limited)
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    result = await harness.result()

    assert harness.socket.closed == (4430, "rate limited; retry in 12 s")
    assert (result.close_code, harness.calls) == (4430, [])


async def test_the_subscription_carries_the_token_and_the_epoch_read_before_the_check(
    make_harness: MakeHarness,
) -> None:
    """The hub learns which token the socket was opened with, and the auth epoch from before the check."""
    harness = make_harness()
    sub = await harness.live()

    assert sub.credential == Credential(TOKEN_ID, None, 7)


async def test_a_revoked_token_closes_4401_with_its_reason(make_harness: MakeHarness) -> None:
    """When the hub says the socket's token is no longer valid, the socket closes 4401 with the reason."""
    harness = make_harness()
    sub = await harness.live()

    sub.revoke("token revoked")
    result = await harness.result()

    assert harness.socket.closed == (4401, "token revoked")
    assert result.close_code == 4401
    assert harness.hub.active == set()


async def test_a_token_the_hub_refuses_on_subscribe_closes_4401_before_any_state_is_sent(
    make_harness: MakeHarness,
) -> None:
    """A revocation announced while the hello's token was checked, found by the hub's re-check when the
    socket subscribes: 4401 with its reason, and no replay, snapshot or ready went out first."""
    harness = make_harness()
    harness.hub.refuse_with = Revoked("token revoked")
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    result = await harness.result()

    assert harness.socket.closed == (4401, "token revoked")
    assert (result.close_code, harness.socket.sent_count) == (4401, 0)
    assert harness.sockets.count(ALICE) == 0


async def test_the_per_user_socket_limit_closes_4429_and_frees_slots(make_harness: MakeHarness) -> None:
    """A user at the socket limit is refused with 4429; a session that ends gives its slot back."""
    sockets = SocketRegistry(limit_per_user=1)
    first = make_harness(sockets=sockets)
    await first.live()
    second = make_harness(sockets=sockets)
    second.start()
    second.socket.say({"type": "hello", "token": TOKEN, "after": None})

    assert (await second.result()).close_code == 4429
    assert second.socket.closed == (4429, "too many sockets")
    assert second.calls == []

    first.socket.leave()
    await first.result()
    assert sockets.count(ALICE) == 0


async def test_may_open_can_refuse_a_user_with_4429(make_harness: MakeHarness) -> None:
    """An extra admission check that says no closes with 4429 and takes no slot."""
    harness = make_harness()
    harness.start(may_open=lambda user_id: False)
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    await harness.result()

    assert harness.socket.closed == (4429, "too many sockets")
    assert harness.sockets.count(ALICE) == 0


async def test_a_stopped_hub_refuses_new_sockets_with_1012(make_harness: MakeHarness) -> None:
    """When the hub is shutting down, a new socket is told to come back (1012)."""
    harness = make_harness()
    harness.hub.closed = True
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    await harness.result()

    assert harness.socket.closed == (1012, "server restarting")


# -- initial state --


async def test_resume_replays_stored_events_then_ready_then_live_events(make_harness: MakeHarness) -> None:
    """With a replayable cursor: stored events after it, ready(S, resumed), then live frames after S."""
    harness = make_harness(head=4)
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": 2})

    opening = [await harness.socket.next_sent() for _ in range(3)]
    sub = harness.hub.subscriptions[0]
    sub.push(event_frame(5, stored_event(5)))
    live = await harness.socket.next_sent()

    assert [(frame.type, frame.seq) for frame in opening] == [("event", 3), ("event", 4), ("ready", 4)]
    assert opening[-1].resumed is True
    assert sub.started_at == 4
    assert (live.type, live.seq) == ("event", 5)
    assert harness.calls[:2] == ["subscribe", "head_and_events"]


async def test_a_cursor_at_the_head_resumes_with_nothing_to_replay(make_harness: MakeHarness) -> None:
    """A client that has everything gets ready(S = its cursor, resumed) and nothing else."""
    harness = make_harness(head=7)
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": 7})

    ready = await harness.socket.next_sent()

    assert (ready.type, ready.seq, ready.resumed) == ("ready", 7, True)
    assert harness.hub.subscriptions[0].started_at == 7


@pytest.mark.parametrize(
    ("after", "head", "retained_from"),
    [(None, 9, 1), (2, 9, 5), (0, 200, 1), (10, 9, 1)],
    ids=["no-cursor", "pruned", "too-far-behind", "from-the-future"],
)
async def test_without_a_replayable_cursor_the_client_gets_a_snapshot(
    make_harness: MakeHarness, after: int | None, head: int, retained_from: int
) -> None:
    """No cursor, a pruned one, one too far behind, or one ahead: snapshot(S), then ready(S, not resumed)."""
    harness = make_harness(head=head, retained_from=retained_from, replay_max=100)
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": after})

    snapshot, ready = await harness.socket.next_sent(), await harness.socket.next_sent()

    assert (snapshot.type, snapshot.seq, snapshot.jobs) == ("snapshot", head, [{"job_id": "j1", "seq": 0}])
    assert (ready.type, ready.seq, ready.resumed) == ("ready", head, False)
    assert harness.hub.subscriptions[0].started_at == head
    assert harness.calls.index("subscribe") < harness.calls.index("snapshot")


# -- live phase --


async def test_live_frames_are_sent_as_the_hub_hands_them_out(make_harness: MakeHarness) -> None:
    """Frames from the subscription go to the socket unchanged and in order, snapshots included."""
    harness = make_harness(head=3)
    sub = await harness.live(after=3)
    frames = [event_frame(4, stored_event(4)), snapshot_frame(9, "[]"), event_frame(10, stored_event(10))]
    for frame in frames:
        sub.push(frame)

    assert await harness.socket.next_sent_texts(3) == [frame.text for frame in frames]
    harness.socket.leave()
    result = await harness.result()
    assert (result.events_sent, result.snapshots_sent, result.resumed) == (2, 1, True)


async def test_a_ping_gets_a_pong(make_harness: MakeHarness) -> None:
    """A client ping is answered with a pong and the session carries on."""
    harness = make_harness()
    sub = await harness.live()

    harness.socket.say({"type": "ping"})
    pong = await harness.socket.next_sent()
    sub.push(event_frame(1, stored_event(1)))
    event = await harness.socket.next_sent()

    assert (pong.type, event.type) == ("pong", "event")


@pytest.mark.parametrize("message", ["ping", '{"type": "hello", "token": null}', '{"type": "ping", "x": 1}'])
async def test_a_malformed_client_frame_closes_1008(make_harness: MakeHarness, message: str) -> None:
    """Anything but a ping after the hello is a bad message, and the subscription is released."""
    harness = make_harness()
    await harness.live()

    harness.socket.say(message)
    result = await harness.result()

    assert harness.socket.closed == (1008, "bad message")
    assert result.close_code == 1008
    assert harness.hub.active == set()


async def test_a_client_that_stops_reading_is_closed_1013(make_harness: MakeHarness) -> None:
    """When a send makes no progress for send_timeout_s the socket is closed as too slow."""
    harness = make_harness(stall_after=2)  # snapshot and ready go out, then the client stops reading
    sub = await harness.live()

    sub.push(event_frame(1, stored_event(1)))
    result = await harness.result()

    assert harness.socket.closed == (1013, "too slow")
    assert result.close_code == 1013
    assert harness.hub.active == set()


async def test_a_stuck_replay_is_closed_1013_too(make_harness: MakeHarness) -> None:
    """The send timeout also covers the replay of stored events."""
    harness = make_harness(head=50, stall_after=3)
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": 0})

    result = await harness.result()

    assert (result.close_code, result.events_sent) == (1013, 3)
    assert harness.calls[-1] == "unsubscribe"


async def test_a_hub_shutdown_closes_1012(make_harness: MakeHarness) -> None:
    """When the hub stops, the socket is closed with 1012 so the client resumes elsewhere."""
    harness = make_harness()
    sub = await harness.live()

    sub.end()
    result = await harness.result()

    assert harness.socket.closed == (1012, "server restarting")
    assert result.close_code == 1012


async def test_a_client_that_leaves_ends_the_session_quietly(make_harness: MakeHarness) -> None:
    """A disconnect ends the session without a close frame and always unsubscribes."""
    harness = make_harness()
    await harness.live()

    harness.socket.leave()
    result = await harness.result()

    assert harness.socket.closed is None
    assert (result.close_code, result.reason) == (None, "client disconnected")
    assert harness.calls[-1] == "unsubscribe"
    assert harness.hub.active == set()
    assert harness.sockets.count(ALICE) == 0


async def test_an_unexpected_failure_closes_1011_and_cleans_up(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug closes with 1011 (the client reconnects), logged with its traceback and the user."""
    harness = make_harness()
    harness.store.fail_with = RuntimeError("boom")
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    result = await harness.result()

    assert harness.socket.closed == (1011, "internal error")
    assert result.close_code == 1011
    assert harness.hub.active == set()
    assert harness.sockets.count(ALICE) == 0
    assert any(record.exc_info and str(ALICE) in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
)
async def test_an_unreachable_database_closes_1011_with_one_warning_and_no_traceback(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """The database down during a handshake (a restart, a failover) is no bug: the socket closes 1011
    saying to try again, with one WARNING line and no ERROR traceback per hello."""
    harness = make_harness()
    harness.store.fail_with = error
    harness.start()
    harness.socket.say({"type": "hello", "token": TOKEN, "after": None})

    result = await harness.result()

    assert harness.socket.closed == (1011, "database unavailable, try again")
    assert (result.close_code, harness.sockets.count(ALICE)) == (1011, 0)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert [r.levelno for r in caplog.records if "database unreachable" in r.getMessage()] == [
        logging.WARNING
    ]


async def test_one_log_line_per_session_and_never_the_token(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A session logs one summary line with user, close code and counts, and no token anywhere."""
    caplog.set_level(logging.DEBUG, logger="app.live")
    harness = make_harness()
    sub = await harness.live()
    sub.push(event_frame(1, stored_event(1)))
    await harness.socket.next_sent()
    harness.socket.say({"type": "hello", "token": TOKEN})

    await harness.result()

    lines = [record.getMessage() for record in caplog.records if record.name == "app.live.session"]
    assert len(lines) == 1
    assert f"user={ALICE}" in lines[0]
    assert "code=1008" in lines[0]
    assert "events=1 snapshots=1" in lines[0]
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


# -- the registry --


def test_socket_registry_counts_per_user() -> None:
    """The registry admits up to the limit per user, independently per user, and frees on release."""
    sockets = SocketRegistry(limit_per_user=2)
    bob = uuid4()

    assert [sockets.try_acquire(ALICE) for _ in range(3)] == [True, True, False]
    assert sockets.try_acquire(bob)
    sockets.release(ALICE)
    assert sockets.try_acquire(ALICE)
    assert (sockets.count(ALICE), sockets.count(bob)) == (2, 1)


async def test_a_cancelled_session_still_unsubscribes_and_logs(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A server cancelling the handler (shutdown) still releases the subscription and logs the session."""
    caplog.set_level(logging.INFO, logger="app.live.session")
    harness = make_harness()
    await harness.live()

    await harness.abandon()

    assert harness.calls[-1] == "unsubscribe"
    assert harness.sockets.count(ALICE) == 0
    assert [r.getMessage() for r in caplog.records if "reason='cancelled'" in r.getMessage()] != []
