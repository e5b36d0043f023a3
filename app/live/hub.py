"""The live hub: one supervised LISTEN connection per web process, fanned out to per-socket subscriptions.

How "every event exactly once, in seq order" holds (docs/design.md):
- The listener callback decodes a notification's seq and builds its event frame once, and appends that one
  notice to each subscriber's bounded queue (O(1) per subscriber, never awaits), so a slow socket or a
  slow query cannot stall the others.
- The common case costs a subscriber no more than taking the shared frame: the next seq, with its payload.
- Everything that needs the database happens in the consumer's task, when it takes the next frame:
  duplicates (seq <= position) are dropped, a gap (seq > position + 1) is filled from the table first
  (`EventStore.replayable`, the same rule a reconnecting socket gets), a truncated payload is completed
  from the table.
- A queue that overflows is replaced by ONE snapshot marker; taking it sends a snapshot with its S and
  moves the position to S, so the next event is S + 1.
- When the connection dies, the hub reconnects with backoff, re-LISTENs, and puts a catch-up marker into
  every subscription: taking it delivers `seq > position` from the table.

And "a revoked token stops receiving events within 2 s" (docs/design.md, "Revocation"): the same connection
LISTENs on `auth_changes`, where triggers announce a token revoked, deleted or given a new expiry, and a user
deleted. The hub re-checks the tokens of that user's subscriptions and ends those no longer valid
(`Revoked`); a timer ends a subscription when its token expires. Notifications sent while the connection was
down are lost, so a reconnect re-checks every subscription's token.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from app.live.frames import Frame, event_frame, snapshot_frame
from app.live.store import CONNECTION_ERRORS, EventStore, SeqText
from db.queries import queries

logger = logging.getLogger("app.live.hub")

CHANNEL_PREFIX: Final = "progress_user_"
REPLAY_FRAMES_REMEMBERED: Final = 100_000
"""What `Hub.replayable` keeps at most, counted as one per answer plus one per event in it (all forgotten
past it): bounded by frames, not answers, since one answer holds up to REPLAY_MAX events (a count of
answers let one user pin gigabytes)."""
LISTEN_BATCH: Final = 500
"""Channels re-LISTENed per round trip after a reconnect."""
EXPIRY_RECHECK_MIN_S: Final = 0.05
"""The shortest wait before a token's expiry is re-checked (see `Subscription._expire_at`)."""
AUTH_CHANNEL: Final = "auth_changes"
"""Where db/sql/auth_triggers.sql announces tokens and users that changed."""
APPLICATION_NAME: Final = "bookmarks-hub"

T = TypeVar("T")


class HubClosed(Exception):
    """The subscription has ended: the hub stopped (or the subscription was unsubscribed)."""


class Revoked(Exception):
    """The token the subscription was opened with is no longer valid; `str(error)` says why."""


class Credential(msgspec.Struct, frozen=True):
    """The token a subscription was opened with: the hub ends the subscription when it stops being valid."""

    token_id: UUID
    expires_at: datetime | None
    checked_epoch: int
    """`Hub.auth_epoch` read before the token was checked: a change announced since then is re-checked."""


class HubStatus(msgspec.Struct, frozen=True, kw_only=True):
    connected: bool
    channels: int
    """Channels LISTENed (users with at least one subscriber in this process)."""
    subscribers: int
    reconnects: int
    events_caught_up: int
    """Events delivered from the table because their notification was missed (outage, gap)."""
    notifications: int


def channel_name(user_id: UUID) -> str:
    """The trigger's channel: `'progress_user_' || user_id::text` (lowercase, hyphenated, 50 bytes)."""
    return f"{CHANNEL_PREFIX}{user_id}"


class _AuthChange(msgspec.Struct):
    """What the auth triggers send: a token of a user, a whole user, or nothing (a table truncated: every
    socket's token is re-checked)."""

    user_id: UUID | None = None
    token_id: UUID | None = None


_auth_change_decoder: Final = msgspec.json.Decoder(_AuthChange)


class _NoticeHead(msgspec.Struct):
    """The two payload fields the hub needs; the rest of the event passes through as text."""

    seq: int
    truncated: bool = False


class _Notice(msgspec.Struct, frozen=True):
    """One notification, shared by every subscriber of its user."""

    seq: int
    frame: Frame | None
    """The event frame, built once for all subscribers; None when the trigger sent a truncated marker (the
    event is read from the table)."""


class _Marker(msgspec.Struct, frozen=True):
    name: str


_SNAPSHOT: Final = _Marker("snapshot")
_CATCH_UP: Final = _Marker("catch_up")

_QueueItem = _Notice | _Marker


class _Batch(msgspec.Struct):
    """What taking one queue item produced: frames in seq order, and how many came from the table."""

    frames: list[Frame]
    caught_up: int = 0
    ends_recovery: bool = False
    is_snapshot: bool = False


_notice_decoder: Final = msgspec.json.Decoder(_NoticeHead)

if TYPE_CHECKING:
    # asyncpg's classes are generic only in its stubs: keep these subscripts away from the runtime.
    _AnyConnection: TypeAlias = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]
    """What asyncpg hands its listener callbacks."""


def _decode_notice(payload: str) -> _Notice | None:
    try:
        head = _notice_decoder.decode(payload)
    except msgspec.DecodeError:
        return None
    return _Notice(head.seq, None if head.truncated else event_frame(head.seq, payload))


class _Recovery:
    """Counts what one reconnect's catch-up delivered, and logs one line when every subscriber is done."""

    def __init__(self, *, outage_s: float, attempts: int, channels: int, pending: int) -> None:
        self._outage_s = outage_s
        self._attempts = attempts
        self._channels = channels
        self._pending = pending
        self.caught_up = 0
        self.resynced = 0
        if pending == 0:
            self._log()

    def finish_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._log()

    def _log(self) -> None:
        logger.info(
            "progress hub recovered after %.2fs (%d connect attempts): %d channels re-listened, "
            "%d events caught up from the table, %d subscribers resynced by snapshot",
            self._outage_s,
            self._attempts,
            self._channels,
            self.caught_up,
            self.resynced,
        )


class Subscription:
    """One socket's view of its user's stream. Not shared between tasks: one consumer calls next_frame.

    Kept small (thousands per process): an idle subscription holds no queue and no future. Pending items
    are `_head` then `_rest` (a deque created when a second item waits), and the consumer's waiter exists
    only while it waits.
    """

    __slots__ = (
        "_ended",
        "_expiry",
        "_head",
        "_hub",
        "_position",
        "_ready",
        "_recovery",
        "_rest",
        "_revoked",
        "_waiter",
        "channel",
        "credential",
        "user_id",
    )

    def __init__(self, hub: Hub, user_id: UUID, credential: Credential | None) -> None:
        self._hub = hub
        self.user_id = user_id
        self.credential = credential
        self.channel = channel_name(user_id)
        self._head: _QueueItem | None = None
        self._rest: collections.deque[_QueueItem] | None = None
        self._ready: collections.deque[Frame] | None = None
        """Frames read from the table (a catch-up, a gap), handed out before any later item."""
        self._waiter: asyncio.Future[None] | None = None
        self._position: int | None = None
        self._ended = False
        self._revoked: str | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._recovery: _Recovery | None = None

    @property
    def position(self) -> int | None:
        """The seq of the last event (or snapshot S) handed out by `next_frame`."""
        return self._position

    def start_at(self, seq: int) -> None:
        """The socket has sent everything up to `seq` (replay or snapshot S): later frames have seq > S."""
        self._position = seq

    async def next_frame(self) -> Frame:
        """The next frame to send (an event or a snapshot); raises HubClosed once the subscription ended,
        Revoked once its token is no longer valid (before any frame still queued)."""
        while True:
            if self._ended or self._revoked is not None:
                self._raise_if_over()
            if self._ready:
                frame = self._ready.popleft()
                self._position = frame.seq
                return frame
            item = self._head
            if item is None:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            self._head = self._rest.popleft() if self._rest else None
            if type(item) is _Notice:
                position = self._position
                if position is not None:
                    if item.frame is not None and item.seq == position + 1:
                        self._position = item.seq
                        return item.frame  # the common case: the next event, its payload notified
                    if item.seq <= position:
                        continue  # already delivered (replay, snapshot, catch-up or a repeated notification)
            # A batch is applied only once complete, so a read retried after an outage repeats nothing.
            self._apply(await self._with_retry(functools.partial(self._prepare, item)))

    # -- called by the hub (synchronously, from the listener callback or under the hub's lock) --

    def _offer(self, item: _QueueItem) -> None:
        if self._ended:
            return
        pending = 0 if self._head is None else 1 + (len(self._rest) if self._rest else 0)
        if pending >= self._hub.queue_size:
            # The socket fell behind: its backlog is worth less than one fresh snapshot
            # (docs/design.md, "The hub").
            self._head, self._rest = _SNAPSHOT, None
        elif self._head is None:
            self._head = item
        elif self._rest is None:
            self._rest = collections.deque((item,))
        else:
            self._rest.append(item)
        self._wake()

    def _catch_up(self, recovery: _Recovery) -> None:
        self._finish_recovery()
        self._recovery = recovery
        self._offer(_CATCH_UP)

    def _end(self) -> None:
        self._ended = True
        self._head = self._rest = self._ready = None
        self._finish_recovery()
        self._cancel_expiry()
        self._wake()

    def _revoke(self, reason: str) -> None:
        if self._ended or self._revoked is not None:
            return
        self._revoked = reason
        self._cancel_expiry()
        self._wake()

    def _expire_at(self, expires_at: datetime | None) -> None:
        """(Re)arms the timer that re-checks the token when it expires. A re-check, not a revocation: the
        expiry it was armed with may come from a re-check answered before a later change (a new expiry)."""
        self._cancel_expiry()
        if expires_at is None or self._ended:
            return
        delay_s = (expires_at - datetime.now(UTC)).total_seconds()
        # At least EXPIRY_RECHECK_MIN_S: the database's clock may lag ours, and says "valid" until it agrees.
        self._expiry = asyncio.get_running_loop().call_later(
            max(delay_s, EXPIRY_RECHECK_MIN_S), self._expired
        )

    def _expired(self) -> None:
        self._expiry = None
        self._hub._check_tokens([self])

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _raise_if_over(self) -> None:
        if self._revoked is not None:
            raise Revoked(self._revoked)
        if self._ended:
            raise HubClosed

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the consumer side: everything that reads the database happens here, never in the callback --

    def _apply(self, batch: _Batch) -> None:
        if batch.frames:
            if self._ready is None:
                self._ready = collections.deque()
            self._ready.extend(batch.frames)
        if batch.caught_up:
            self._hub._count_caught_up(batch.caught_up)
            if self._recovery is not None:
                self._recovery.caught_up += batch.caught_up
        if batch.is_snapshot and self._recovery is not None:
            self._recovery.resynced += 1
        if batch.ends_recovery:
            self._finish_recovery()

    async def _prepare(self, item: _QueueItem) -> _Batch:
        if isinstance(item, _Notice):
            return await self._prepare_event(item)
        if item is _SNAPSHOT:
            return await self._prepare_snapshot()
        return await self._prepare_catch_up()

    async def _prepare_event(self, notice: _Notice) -> _Batch:
        position = self._position
        if position is not None and notice.seq <= position:
            return _Batch([])  # already delivered (replay, snapshot, catch-up or a repeated notification)
        if position is not None and notice.seq > position + 1:
            # A gap: the missed events (and this one, committed before its NOTIFY) are in the table.
            return await self._prepare_catch_up(gap_at=notice.seq)
        if notice.frame is not None:
            return _Batch([notice.frame])
        payload = await self._hub.store.event(self.user_id, notice.seq)
        if payload is None:
            # Pruned between NOTIFY and now: only a snapshot can keep the stream honest.
            return await self._prepare_snapshot()
        return _Batch([event_frame(notice.seq, payload)])

    async def _prepare_snapshot(self) -> _Batch:
        seq, jobs = await self._hub.store.snapshot(self.user_id)
        # A snapshot supersedes any pending catch-up: the client now has every job's state as of S.
        return _Batch([snapshot_frame(seq, jobs)], ends_recovery=True, is_snapshot=True)

    async def _prepare_catch_up(self, *, gap_at: int | None = None) -> _Batch:
        """Everything after the position from the table, or a snapshot when that is not possible.

        `gap_at`: the seq whose notification showed a gap (not a reconnect). It and later events have
        notifications of their own, so only the ones before it count as caught up.
        """
        position = self._position
        if position is None:
            return _Batch([], ends_recovery=gap_at is None)
        events = await self._hub.store.replayable(self.user_id, position, self._hub.queue_size)
        if events is None:
            return await self._prepare_snapshot()
        missed = len(events) if gap_at is None else sum(1 for seq, _ in events if seq < gap_at)
        frames = [event_frame(seq, text) for seq, text in events]
        return _Batch(frames, caught_up=missed, ends_recovery=gap_at is None)

    def _finish_recovery(self) -> None:
        if self._recovery is not None:
            self._recovery.finish_one()
            self._recovery = None

    async def _with_retry(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Runs store reads until the database answers: the socket stays open through an outage."""
        delay = self._hub.backoff_initial_s
        while True:
            try:
                return await operation()
            except CONNECTION_ERRORS as exc:
                if self._ended:
                    raise HubClosed from exc
                logger.warning("progress store unreachable for user %s, retrying: %r", self.user_id, exc)
                await asyncio.sleep(_jittered(delay))
                delay = min(delay * 2, self._hub.backoff_max_s)


async def _listen_batch(
    conn: asyncpg.Connection[asyncpg.Record], channels: list[str], callback: Callable[..., None]
) -> None:
    """`conn.add_listener(channel, callback)` for each channel, in one round trip instead of one each (a
    hub with 10,000 channels re-LISTENed them one by one in 6 to 8 s, past its 5 s deadline: it never
    recovered). asyncpg offers no batch: its channel → callbacks map (what `add_listener` fills, and
    `remove_listener` and the notification dispatch read) is filled here, then one simple-protocol query
    LISTENs on them all. Registered first, so no notification that arrives with the reply is dropped."""
    listeners: dict[str, set[object]] | None = getattr(conn, "_listeners", None)
    make_entry = getattr(getattr(asyncpg.connection, "_Callback", None), "from_callable", None)
    if listeners is None or make_entry is None:  # an asyncpg without these internals: one by one
        for channel in channels:
            await conn.add_listener(channel, callback)
        return
    entry = make_entry(callback)
    for channel in channels:
        listeners.setdefault(channel, set()).add(entry)
    await conn.execute("".join(f"LISTEN {_quote_ident(channel)};" for channel in channels))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _replay_size(events: list[SeqText] | None) -> int:
    return 1 + (len(events) if events else 0)


def _jittered(delay: float) -> float:
    """Half to full delay, so many processes reconnecting after a failover do not all arrive at once."""
    return delay * random.uniform(0.5, 1.0)


class Hub:
    """One LISTEN connection for this process; see the module docstring for the delivery rules."""

    def __init__(
        self,
        dsn: str,
        store: EventStore,
        *,
        queue_size: int = 1000,
        probe_interval_s: float = 5.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self.store = store
        self.queue_size = queue_size
        """Items a subscription may hold before its backlog is replaced by one snapshot."""
        self._probe_interval_s = probe_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._subs: dict[str, set[Subscription]] = {}
        self._idle: set[str] = set()
        """Channels whose last subscriber left, still LISTENed: UNLISTENed in the background unless a
        subscriber comes back first (a socket that reconnects costs no UNLISTEN and LISTEN; thousands
        closing at once, as in a restart, wait for none)."""
        self._unlistening: asyncio.Task[None] | None = None
        self._notified: dict[str, int] = {}
        """Notifications received per LISTENed channel (reset when it is UNLISTENed or the hub reconnects)."""
        self._replays: dict[str, dict[tuple[int, int], list[SeqText] | None]] = {}
        """`replayable`'s answers per channel and (after, limit); a channel's are dropped on its next
        notification or its UNLISTEN, all of them on a reconnect."""
        self._replays_size = 0
        """The answers and events in `_replays` (see REPLAY_FRAMES_REMEMBERED)."""
        self._lock = asyncio.Lock()
        """Serialises every use of the connection: LISTEN, UNLISTEN, the probe, the re-LISTEN."""
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._reconnects = 0
        self._events_caught_up = 0
        self._notifications = 0
        self._auth_epoch = 0
        self._token_checks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connects (raising if that fails) and starts supervising the connection."""
        conn = await self._connect()
        try:
            await conn.add_listener(AUTH_CHANNEL, self._on_auth_change)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._supervisor = asyncio.create_task(self._supervise(), name="progress-hub-supervisor")

    async def stop(self) -> None:
        """Closes the connection; every subscription's next_frame raises HubClosed."""
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
        background = [*self._token_checks, *([self._unlistening] if self._unlistening else [])]
        for task in background:
            task.cancel()
        if background:
            await asyncio.wait(background)
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await self._close_quietly(conn)
            for subs in self._subs.values():
                for sub in subs:
                    sub._end()
            self._subs.clear()

    @property
    def auth_epoch(self) -> int:
        """Moves on with every announced token or user change, every lost connection and every reconnect
        (see `Credential`)."""
        return self._auth_epoch

    async def subscribe(self, user_id: UUID, credential: Credential | None = None) -> Subscription:
        """A subscription to the user's events; with a credential, it ends (`Revoked`) when that token is
        revoked, expires, or its user is deleted.

        Raises Revoked at once when a change announced while the token was being checked (its
        `checked_epoch` is not the hub's) turns out to concern it: the token is re-checked here, before
        the caller sends anything (rare, and one indexed query)."""
        if self._supervisor is None:
            raise RuntimeError("Hub.start() must succeed before subscribe()")
        sub = Subscription(self, user_id, credential)
        async with self._lock:
            self._raise_if_closed()
            subs = self._subs.setdefault(sub.channel, set())
            subs.add(sub)
            if len(subs) == 1 and sub.channel in self._idle:
                self._idle.discard(sub.channel)  # its UNLISTEN had not happened yet: still LISTENed
            elif len(subs) == 1:
                try:
                    await self._listen(sub.channel)
                except BaseException:
                    del self._subs[sub.channel]
                    raise
        if credential is not None:
            sub._expire_at(credential.expires_at)
            if credential.checked_epoch != self._auth_epoch:
                await self._recheck_before_use(sub)
        return sub

    async def _recheck_before_use(self, sub: Subscription) -> None:
        try:
            await self._recheck([sub])
            sub._raise_if_over()
        except BaseException:
            await self.unsubscribe(sub)
            raise

    async def replayable(self, user_id: UUID, after: int, limit: int) -> list[SeqText] | None:
        """`EventStore.replayable`, remembered until the user's next notification: the sockets of one user
        that come back together (a restart, a network blip) resume from the same seq with one query.

        Only for a subscriber's own user (its channel LISTENed before the call) while the connection is up:
        an answer read with no notification for that user since, and none missed, is still the table's.
        An event committed after the read is notified, so it both ends the answer's use and reaches the
        socket that used it (subscribed first) as its next event.
        """
        channel = channel_name(user_id)
        generation = self._replay_generation(channel)
        if generation is None:
            return await self.store.replayable(user_id, after, limit)
        key = (after, limit)
        remembered = self._replays.get(channel)
        if remembered is not None and key in remembered:
            return remembered[key]
        events = await self.store.replayable(user_id, after, limit)
        if self._replay_generation(channel) == generation:  # nothing notified or missed during the read
            self._remember_replay(channel, key, events)
        return events

    def _remember_replay(self, channel: str, key: tuple[int, int], events: list[SeqText] | None) -> None:
        size = _replay_size(events)
        if size > REPLAY_FRAMES_REMEMBERED:
            return
        remembered = self._replays.setdefault(channel, {})
        if key in remembered:  # read by two sockets at once
            self._replays_size -= _replay_size(remembered[key])
        if self._replays_size + size > REPLAY_FRAMES_REMEMBERED:
            self._replays.clear()
            self._replays_size = 0
            remembered = self._replays[channel] = {}
        remembered[key] = events
        self._replays_size += size

    def _forget_replays(self, channel: str) -> None:
        remembered = self._replays.pop(channel, None)
        if remembered:
            self._replays_size -= sum(_replay_size(events) for events in remembered.values())

    def _forget_all_replays(self) -> None:
        self._replays.clear()
        self._replays_size = 0

    async def snapshot(self, user_id: UUID) -> tuple[int, str]:
        return await self.store.snapshot(user_id)

    def _replay_generation(self, channel: str) -> tuple[int, int] | None:
        """What an answer for this channel is valid for: no reconnect and no notification since. None when
        nothing can be remembered (the channel is not LISTENed, or the connection is down)."""
        if channel not in self._subs or not self.connected:
            return None
        return self._reconnects, self._notified.get(channel, 0)

    async def unsubscribe(self, sub: Subscription) -> None:
        sub._end()
        subs = self._subs.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.channel]
            self._idle.add(sub.channel)
            if self._unlistening is None and not self._closed:
                self._unlistening = asyncio.create_task(self._unlisten_idle(), name="progress-hub-unlisten")

    def status(self) -> HubStatus:
        return HubStatus(
            connected=self.connected,
            channels=len(self._subs),
            subscribers=sum(len(subs) for subs in self._subs.values()),
            reconnects=self._reconnects,
            events_caught_up=self._events_caught_up,
            notifications=self._notifications,
        )

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._lost.is_set()

    async def listening_channels(self) -> list[str]:
        """What Postgres says this hub's session LISTENs on (diagnostics; tests of the ref-counting), once
        the UNLISTENs still due are done."""
        async with self._lock:
            if self._conn is None or not self.connected:
                return []
            while self._idle:
                await self._unlisten(self._idle.pop())
            channels: list[str] = await self._conn.fetchval(queries["hub_listening_channels"])
            return channels

    # -- the connection --

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        conn = await asyncpg.connect(
            self._dsn,
            # Long enough for a cold server, short enough that a failover is retried promptly.
            timeout=max(2 * self._probe_interval_s, 1.0),
            server_settings={"application_name": APPLICATION_NAME},
        )
        conn.add_termination_listener(self._on_termination)
        return conn

    def _on_termination(self, conn: _AnyConnection) -> None:
        # A late callback from a connection already replaced must not condemn the new one.
        if conn is self._conn and not self._closed:
            self._mark_lost("connection closed by the server")

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()
            # From now on changes go unannounced: whatever was checked before may be stale (RecentTokens).
            self._auth_epoch += 1

    def _on_notification(self, conn: _AnyConnection, pid: int, channel: str, payload: object) -> None:
        self._notifications += 1
        self._notified[channel] = self._notified.get(channel, 0) + 1
        if self._replays:
            self._forget_replays(channel)  # read before this event
        subs = self._subs.get(channel)
        if not subs:
            return
        notice = _decode_notice(payload) if isinstance(payload, str) else None
        if notice is None:
            # Not written by our trigger; the seq stream itself is intact, so gap repair covers real events.
            logger.warning("ignored a malformed notification on %s: %.200r", channel, payload)
            return
        for sub in subs:
            sub._offer(notice)

    def _on_auth_change(self, conn: _AnyConnection, pid: int, channel: str, payload: object) -> None:
        self._auth_epoch += 1
        try:
            change = _auth_change_decoder.decode(payload) if isinstance(payload, str) else None
        except msgspec.DecodeError:
            change = None
        if change is None:
            logger.warning("ignored a malformed notification on %s: %.200r", channel, payload)
            return
        if change.user_id is None:
            affected: Iterable[Subscription] = (sub for subs in self._subs.values() for sub in subs)
        else:
            affected = self._subs.get(channel_name(change.user_id), ())
        subs = [
            sub
            for sub in affected
            if sub.credential is not None
            and (change.token_id is None or sub.credential.token_id == change.token_id)
        ]
        if subs:
            self._check_tokens(subs)

    def _check_tokens(self, subs: Iterable[Subscription]) -> None:
        """Re-checks the subscriptions' tokens in the background; ends those no longer valid."""
        subs = list(subs)
        if not subs:
            return
        task = asyncio.create_task(self._recheck(subs), name="progress-hub-token-check")
        self._token_checks.add(task)
        task.add_done_callback(self._token_checks.discard)

    async def _recheck(self, subs: list[Subscription]) -> None:
        token_ids = list({sub.credential.token_id for sub in subs if sub.credential is not None})
        delay = self.backoff_initial_s
        while True:
            try:
                states = await self.store.token_states(token_ids)
                break
            except CONNECTION_ERRORS as exc:
                logger.warning("progress hub token check failed, retrying: %r", exc)
            except Exception:
                # Giving up would leave revoked tokens streaming: keep trying, loudly.
                logger.exception("progress hub token check failed for %d sockets, retrying", len(subs))
            if all(sub._ended or sub._revoked is not None for sub in subs):
                return  # nobody left to check
            await asyncio.sleep(_jittered(delay))
            delay = min(delay * 2, self.backoff_max_s)
        for sub in subs:
            assert sub.credential is not None
            state = states.get(sub.credential.token_id)
            if state is None:
                sub._revoke("token deleted")
            elif state.refusal is not None:
                sub._revoke(state.refusal)
            else:
                sub._expire_at(state.expires_at)

    async def _listen(self, channel: str) -> None:
        await self._on_connection("LISTEN", lambda conn: conn.add_listener(channel, self._on_notification))

    async def _unlisten(self, channel: str) -> None:
        # Notifications on it go unseen from now on: its count, and its remembered replays, are void.
        self._notified.pop(channel, None)
        self._forget_replays(channel)
        await self._on_connection(
            "UNLISTEN", lambda conn: conn.remove_listener(channel, self._on_notification)
        )

    async def _unlisten_idle(self) -> None:
        try:
            while self._idle:
                async with self._lock:
                    if self._idle:  # a subscriber may have come back, or a reconnect started afresh
                        await self._unlisten(self._idle.pop())
        finally:
            self._unlistening = None

    async def _on_connection(
        self, what: str, command: Callable[[asyncpg.Connection[asyncpg.Record]], Awaitable[object]]
    ) -> None:
        """Runs one command on the live connection (caller holds the lock); a dead connection is not an
        error here: the supervisor reconnects and re-LISTENs every channel that has subscribers."""
        if self._conn is None or not self.connected:
            return
        try:
            async with asyncio.timeout(self._probe_interval_s):
                await command(self._conn)
        except CONNECTION_ERRORS as exc:
            self._mark_lost(f"{what} failed: {exc!r}")

    async def _close_quietly(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.remove_termination_listener(self._on_termination)
        try:
            async with asyncio.timeout(self._probe_interval_s):
                await conn.close()
        except CONNECTION_ERRORS:
            conn.terminate()  # the server is gone or stuck: drop our end without a goodbye

    # -- supervision --

    async def _supervise(self) -> None:
        while True:
            reason = await self._wait_for_loss()
            lost_at = time.monotonic()
            logger.warning("progress hub lost its LISTEN connection (%s); reconnecting", reason)
            async with self._lock:
                conn, self._conn = self._conn, None
            if conn is not None:
                conn.remove_termination_listener(self._on_termination)
                conn.terminate()
            await self._reconnect(lost_at)

    async def _wait_for_loss(self) -> str:
        while not self._lost.is_set():
            try:
                await asyncio.wait_for(self._lost.wait(), self._probe_interval_s)
            except TimeoutError:
                await self._probe()
        return self._lost_reason

    async def _probe(self) -> None:
        """A half-open TCP connection never reports its death; a query with a deadline does."""
        async with self._lock:
            try:
                await self._on_connection("liveness probe", lambda conn: conn.fetchval(queries["hub_probe"]))
            except Exception as exc:
                # Unexpected, but a fresh connection is the cure for whatever state this one is in.
                logger.exception("progress hub liveness probe failed unexpectedly")
                self._mark_lost(f"probe error {exc!r}")

    async def _reconnect(self, lost_at: float) -> None:
        delay = self.backoff_initial_s
        attempts = 0
        while True:
            await asyncio.sleep(_jittered(delay))
            attempts += 1
            try:
                conn = await self._connect()
                await self._resume_on(conn, time.monotonic() - lost_at, attempts)
                return
            except CONNECTION_ERRORS as exc:
                logger.debug("progress hub reconnect attempt %d failed: %r", attempts, exc)
            except Exception:
                # e.g. a changed password during a failover: keep trying, loudly; never stop supervising.
                logger.exception("progress hub reconnect attempt %d failed", attempts)
            delay = min(delay * 2, self.backoff_max_s)

    async def _resume_on(
        self, conn: asyncpg.Connection[asyncpg.Record], outage_s: float, attempts: int
    ) -> None:
        """Re-LISTENs every channel on a fresh connection, then asks every subscription to catch up."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._probe_interval_s):
                    await conn.add_listener(AUTH_CHANNEL, self._on_auth_change)
                listened = await self._relisten(conn)
            except BaseException:
                conn.terminate()  # failed, or cancelled by stop(): do not leak the new connection
                raise
            self._conn = conn
            # A fresh connection LISTENs on nothing else; what lost its last subscriber meanwhile is due.
            self._idle = listened - self._subs.keys()
            if self._idle and self._unlistening is None and not self._closed:
                self._unlistening = asyncio.create_task(self._unlisten_idle(), name="progress-hub-unlisten")
            self._forget_all_replays()
            self._notified.clear()
            self._lost.clear()
            self._reconnects += 1
            if conn.is_closed():
                # Died before it became ours, so its termination callback was ignored: go round again.
                self._mark_lost("connection closed while re-listening")
            subs = [sub for channel_subs in self._subs.values() for sub in channel_subs]
            recovery = _Recovery(
                outage_s=outage_s, attempts=attempts, channels=len(self._subs), pending=len(subs)
            )
            for sub in subs:
                sub._catch_up(recovery)
            # Changes announced during the outage were lost with the connection.
            self._auth_epoch += 1
            self._check_tokens(sub for sub in subs if sub.credential is not None)

    async def _relisten(self, conn: asyncpg.Connection[asyncpg.Record]) -> set[str]:
        """LISTENs on every channel with subscribers, in batches of LISTEN_BATCH; returns the channels
        LISTENed. `unsubscribe` does not take the lock, so channels are taken from a copy of `_subs` (a
        channel that lost its subscribers meanwhile is LISTENed anyway and left to the caller to UNLISTEN),
        and the loop goes round again for any channel added meanwhile."""
        listened: set[str] = set()
        while due := [channel for channel in list(self._subs) if channel not in listened]:
            for start in range(0, len(due), LISTEN_BATCH):
                batch = due[start : start + LISTEN_BATCH]
                # One deadline per round trip: the whole re-LISTEN takes as many as it needs.
                async with asyncio.timeout(self._probe_interval_s):
                    await _listen_batch(conn, batch, self._on_notification)
                listened.update(batch)
        return listened

    def _count_caught_up(self, count: int) -> None:
        self._events_caught_up += count

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise HubClosed
