"""The progress WebSocket protocol (docs/design.md, "The progress socket"), independent of Litestar.

The route accepts the socket and hands it to `run_progress_session`; everything the protocol promises
(hello, auth, per-user limit, replay or snapshot, live frames, pings, close codes) lives here, so it is
tested with a fake socket, hub and store.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, Generic, Protocol, TypeVar
from uuid import UUID

import msgspec

from app.live.frames import (
    PONG,
    BadFrame,
    Frame,
    Hello,
    NotAHello,
    decode_hello,
    decode_ping,
    event_frame,
    ready_frame,
    snapshot_frame,
)
from app.live.hub import Credential, HubClosed, Revoked
from app.live.store import CONNECTION_ERRORS, SeqText

logger = logging.getLogger("app.live.session")

CLOSE_UNAUTHENTICATED: Final = 4401
"""Only after a token check: the token is unknown, revoked or expired (clients forget it on this code)."""
CLOSE_TOO_MANY_SOCKETS: Final = 4429
CLOSE_RATE_LIMITED: Final = 4430
"""Too many failed token checks from the client's address: try again later, keep the token."""
CLOSE_BAD_MESSAGE: Final = 1008
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_SERVER_RESTARTING: Final = 1012
CLOSE_TOO_SLOW: Final = 1013
CLOSE_TIMEOUT_S: Final = 5.0
"""A socket too slow for data frames may be too slow for the close frame: give up on it after this."""


class SocketLike(Protocol):
    """What the session needs from an accepted WebSocket (Litestar's `WebSocket` fits)."""

    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


class SubscriptionLike(Protocol):
    def start_at(self, seq: int) -> None: ...

    async def next_frame(self) -> Frame: ...


SubT = TypeVar("SubT", bound=SubscriptionLike)


class HubLike(Protocol[SubT]):
    """The part of `app.live.hub.Hub` a session uses."""

    @property
    def auth_epoch(self) -> int: ...

    async def subscribe(self, user_id: UUID, credential: Credential | None = None) -> SubT:
        """Raises HubClosed when the hub is stopping, Revoked when the credential is found invalid."""
        ...

    async def unsubscribe(self, sub: SubT) -> None: ...


class StoreLike(Protocol):
    """The part of `app.live.store.EventStore` a session uses."""

    async def replayable(self, user_id: UUID, after: int, limit: int) -> list[SeqText] | None: ...

    async def snapshot(self, user_id: UUID) -> tuple[int, str]: ...


class Identity(msgspec.Struct, frozen=True):
    """Whom a hello's token belongs to, and which token it is."""

    user_id: UUID
    token_id: UUID
    expires_at: datetime | None = None


class RateLimited(Exception):
    """Raised by `authenticate` when a limit, not the token, refuses the check (close 4430)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class SocketDisconnected(Exception):
    """Raised by a socket adapter when the peer has gone; pass the framework's own type instead via
    `disconnect_errors` (e.g. Litestar's `WebSocketDisconnect`)."""


class SocketRegistry:
    """Open sockets per user in this process, to enforce MAX_SOCKETS_PER_USER."""

    def __init__(self, limit_per_user: int) -> None:
        self._limit = limit_per_user
        self._open: collections.Counter[UUID] = collections.Counter()

    def try_acquire(self, user_id: UUID) -> bool:
        if self._open[user_id] >= self._limit:
            return False
        self._open[user_id] += 1
        return True

    def release(self, user_id: UUID) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]

    def count(self, user_id: UUID) -> int:
        return self._open[user_id]


class SendWatchdog:
    """Ends the sessions whose send has made no progress for `timeout_s`: a client that stopped reading
    fills the transport's write buffer, and the server's send then waits for it to drain (close 1013).

    One periodic scan, instead of a timer created and cancelled around every frame sent (7% of a
    delivery's CPU, docs/benchmarks.md), over the sessions with a send in progress only: an idle socket costs
    it nothing (a scan of all 10,000 sockets every second showed in the delivery p99). A send is caught
    between `timeout_s` and `timeout_s + interval_s` after it began.
    """

    def __init__(self, timeout_s: float, *, interval_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._interval_s = min(1.0, timeout_s / 4) if interval_s is None else interval_s
        self._sessions: set[_ProgressSession[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, session: _ProgressSession[Any]) -> None:
        self._sessions.add(session)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._scan)

    def forget(self, session: _ProgressSession[Any]) -> None:
        self._sessions.discard(session)

    def _scan(self) -> None:
        self._timer = None
        began_before = time.monotonic() - self.timeout_s
        stuck = [
            session
            for session in self._sessions
            if session.sending_since is not None and session.sending_since <= began_before
        ]
        for session in stuck:
            session.interrupt(_TOO_SLOW)
        if self._sessions:
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._scan)


class SessionResult(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID | None
    close_code: int | None
    """None when the client went away first (nothing left to close)."""
    reason: str
    duration_s: float
    events_sent: int
    snapshots_sent: int
    resumed: bool | None
    """True: replayed from `after`; False: started from a snapshot; None: never got that far."""


class _Outcome(msgspec.Struct, frozen=True):
    code: int | None
    reason: str


_CLIENT_GONE: Final = _Outcome(None, "client disconnected")


_UNAUTHENTICATED: Final = _Outcome(CLOSE_UNAUTHENTICATED, "unknown, revoked or expired token")
# Not answers about a token, so not 4401: a client must not forget its token for a slow or odd first frame,
# nor for a hello that carried none (no token was checked).
_NO_TOKEN: Final = _Outcome(CLOSE_BAD_MESSAGE, "no token")
_NOT_A_HELLO: Final = _Outcome(CLOSE_BAD_MESSAGE, "expected a hello")
_BAD_MESSAGE: Final = _Outcome(CLOSE_BAD_MESSAGE, "bad message")
_TOO_MANY_SOCKETS: Final = _Outcome(CLOSE_TOO_MANY_SOCKETS, "too many sockets")
_SERVER_RESTARTING: Final = _Outcome(CLOSE_SERVER_RESTARTING, "server restarting")
_TOO_SLOW: Final = _Outcome(CLOSE_TOO_SLOW, "too slow")
_INTERNAL_ERROR: Final = _Outcome(CLOSE_INTERNAL_ERROR, "internal error")
# 1011 like any failure the client should reconnect after (1013 is this protocol's "too slow"), but it is
# no bug: one WARNING line, not a traceback per hello while the database restarts.
_DATABASE_UNAVAILABLE: Final = _Outcome(CLOSE_INTERNAL_ERROR, "database unavailable, try again")
_CANCELLED: Final = _Outcome(None, "cancelled")


class _Ended(Exception):
    """Control flow: the session is over, with this outcome."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


async def run_progress_session(
    conn: SocketLike,
    *,
    hub: HubLike[SubT],
    store: StoreLike,
    authenticate: Callable[[str], Awaitable[Identity | None]],
    sockets: SocketRegistry,
    replay_max: int,
    hello_timeout_s: float = 5.0,
    send_timeout_s: float = 30.0,
    may_open: Callable[[UUID], bool] | None = None,
    disconnect_errors: tuple[type[BaseException], ...] = (SocketDisconnected,),
    watchdog: SendWatchdog | None = None,
) -> SessionResult:
    """Serve one accepted socket until either side ends it; always closes, unsubscribes and logs once.

    `authenticate(token)` returns the token's identity, None for a bad token (4401), or raises
    RateLimited (4430). `may_open(user)` is an extra admission check (False → 4429). `watchdog`: the
    process's (a server passes one for all its sockets); by default one of this session's own, closing it
    once a send has made no progress for `send_timeout_s`.
    """
    session = _ProgressSession(
        conn,
        hub=hub,
        store=store,
        authenticate=authenticate,
        sockets=sockets,
        replay_max=replay_max,
        hello_timeout_s=hello_timeout_s,
        watchdog=watchdog if watchdog is not None else SendWatchdog(send_timeout_s),
        may_open=may_open,
        disconnect_errors=disconnect_errors,
    )
    return await session.run()


class _ProgressSession(Generic[SubT]):
    """One socket's session. Live frames are pumped in the handler's own task; a second task reads the
    client. Either of them, or the watchdog, ends the session by `interrupt`ing the handler's task."""

    __slots__ = (
        "_authenticate",
        "_conn",
        "_disconnect_errors",
        "_events_sent",
        "_handler",
        "_hello_timeout_s",
        "_hub",
        "_interrupted",
        "_may_open",
        "_reader",
        "_replay_max",
        "_resumed",
        "_sends",
        "_snapshots_sent",
        "_sockets",
        "_store",
        "_user_id",
        "_watchdog",
        "sending_since",
    )

    def __init__(
        self,
        conn: SocketLike,
        *,
        hub: HubLike[SubT],
        store: StoreLike,
        authenticate: Callable[[str], Awaitable[Identity | None]],
        sockets: SocketRegistry,
        replay_max: int,
        hello_timeout_s: float,
        watchdog: SendWatchdog,
        may_open: Callable[[UUID], bool] | None,
        disconnect_errors: tuple[type[BaseException], ...],
    ) -> None:
        self._conn = conn
        self._hub = hub
        self._store = store
        self._authenticate = authenticate
        self._sockets = sockets
        self._replay_max = replay_max
        self._hello_timeout_s = hello_timeout_s
        self._watchdog = watchdog
        self._may_open = may_open
        self._disconnect_errors = disconnect_errors
        self._handler: asyncio.Task[Any] | None = None
        """The task serving the session, while `interrupt` may end it."""
        self._interrupted: _Outcome | None = None
        self._reader: asyncio.Task[_Outcome] | None = None
        self._sends = 0
        self.sending_since: float | None = None
        """When the oldest send still in progress began (`time.monotonic()`); None when none is."""
        self._user_id: UUID | None = None
        self._resumed: bool | None = None
        self._events_sent = 0
        self._snapshots_sent = 0

    async def run(self) -> SessionResult:
        started = time.monotonic()
        outcome = _CANCELLED  # unless something below finishes: the server is cancelling this handler
        self._handler = asyncio.current_task()
        try:
            outcome = await self._outcome()
            if outcome.code is not None:
                await self._close(outcome)
        finally:
            self._handler = None
            self._watchdog.forget(self)  # a send the server's cancellation cut short
            result = SessionResult(
                user_id=self._user_id,
                close_code=outcome.code,
                reason=outcome.reason,
                duration_s=time.monotonic() - started,
                events_sent=self._events_sent,
                snapshots_sent=self._snapshots_sent,
                resumed=self._resumed,
            )
            _log_session(result)
        return result

    def interrupt(self, outcome: _Outcome) -> None:
        """Ends the session with `outcome` (the client reader finished, or a send is stuck): cancels the
        handler's task wherever it waits; `_outcome` turns that cancellation into the outcome."""
        if self._handler is not None and self._interrupted is None:
            self._interrupted = outcome
            self._handler.cancel()

    async def _outcome(self) -> _Outcome:
        try:
            return await self._serve()
        except _Ended as ended:
            return ended.outcome
        except asyncio.CancelledError:
            interrupted, handler = self._interrupted, self._handler
            if interrupted is None or handler is None or handler.uncancel() > 0:
                raise  # the server itself is cancelling the handler
            return interrupted
        except CONNECTION_ERRORS as exc:
            logger.warning("progress socket: database unreachable, closing: user=%s %r", self._user_id, exc)
            return _DATABASE_UNAVAILABLE
        except Exception:
            return self._failed()
        finally:
            self._handler = None  # from here on (the close) nothing interrupts

    def _failed(self) -> _Outcome:
        # Logged with its traceback, and the client gets a close code it reconnects on.
        logger.exception("progress socket failed: user=%s", self._user_id)
        return _INTERNAL_ERROR

    async def _serve(self) -> _Outcome:
        hello = await self._receive_hello()
        user_id, credential = await self._identify(hello)
        self._user_id = user_id
        self._admit(user_id)
        try:
            return await self._serve_user(user_id, credential, hello.after)
        finally:
            self._sockets.release(user_id)

    async def _serve_user(self, user_id: UUID, credential: Credential, after: int | None) -> _Outcome:
        try:
            sub = await self._hub.subscribe(user_id, credential)
        except HubClosed:
            raise _Ended(_SERVER_RESTARTING) from None
        except Revoked as revoked:  # a change announced during the token check concerned this token
            raise _Ended(_Outcome(CLOSE_UNAUTHENTICATED, str(revoked))) from None
        try:
            # Subscribed first, read second: whatever commits in between is queued and then deduplicated.
            sub.start_at(await self._send_initial_state(user_id, after))
            return await self._stream(sub)
        finally:
            await self._hub.unsubscribe(sub)

    # -- hello --

    async def _receive_hello(self) -> Hello:
        try:
            async with asyncio.timeout(self._hello_timeout_s):
                text = await self._receive()
        except TimeoutError:
            no_hello = _Outcome(CLOSE_BAD_MESSAGE, f"no hello within {self._hello_timeout_s:g} s")
            raise _Ended(no_hello) from None
        try:
            return decode_hello(text)
        except BadFrame:
            raise _Ended(_BAD_MESSAGE) from None
        except NotAHello:
            raise _Ended(_NOT_A_HELLO) from None

    async def _identify(self, hello: Hello) -> tuple[UUID, Credential]:
        if hello.token is None:
            raise _Ended(_NO_TOKEN)
        epoch = self._hub.auth_epoch  # before the check: a revocation announced during it is re-checked
        try:
            identity = await self._authenticate(hello.token)
        except RateLimited as limited:
            raise _Ended(_Outcome(CLOSE_RATE_LIMITED, str(limited))) from None
        if identity is None:
            raise _Ended(_UNAUTHENTICATED)
        return identity.user_id, Credential(identity.token_id, identity.expires_at, epoch)

    def _admit(self, user_id: UUID) -> None:
        if self._may_open is not None and not self._may_open(user_id):
            raise _Ended(_TOO_MANY_SOCKETS)
        if not self._sockets.try_acquire(user_id):
            raise _Ended(_TOO_MANY_SOCKETS)

    # -- initial state --

    async def _send_initial_state(self, user_id: UUID, after: int | None) -> int:
        """Replays from `after` when possible, else sends a snapshot; returns the S sent in `ready`."""
        events = None if after is None else await self._store.replayable(user_id, after, self._replay_max)
        if after is not None and events is not None:
            for seq, text in events:
                await self._send(event_frame(seq, text))
            seq = events[-1][0] if events else after
            self._resumed = True
        else:
            seq, jobs = await self._store.snapshot(user_id)
            await self._send(snapshot_frame(seq, jobs))
            self._resumed = False
        await self._send(ready_frame(seq, resumed=self._resumed))
        return seq

    # -- live --

    async def _stream(self, sub: SubT) -> _Outcome:
        """Live frames out (in this task) and client frames in (a reader task), until either side ends
        the session: the reader's outcome reaches this task through `interrupt`."""
        self._reader = reader = asyncio.create_task(self._read_client(), name="progress-socket-reader")
        reader.add_done_callback(self._reader_done)
        try:
            await self._pump(sub)
        except _Ended as ended:
            return ended.outcome
        finally:
            self._reader = None  # a reader finishing from now on no longer interrupts
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                handler = asyncio.current_task()
                if handler is not None and handler.cancelling():
                    raise  # this task is being cancelled too (an interrupt, or the server)
        raise AssertionError("the pump returned without ending the session")

    def _reader_done(self, reader: asyncio.Task[_Outcome]) -> None:
        if reader is self._reader and not reader.cancelled():
            self.interrupt(reader.result())

    async def _pump(self, sub: SubT) -> None:
        while True:
            try:
                frame = await sub.next_frame()
            except HubClosed:
                raise _Ended(_SERVER_RESTARTING) from None
            except Revoked as revoked:
                raise _Ended(_Outcome(CLOSE_UNAUTHENTICATED, str(revoked))) from None
            await self._send(frame)

    async def _read_client(self) -> _Outcome:
        """Answers pings until the client breaks the protocol or leaves (never raises)."""
        try:
            while True:
                text = await self._receive()
                try:
                    decode_ping(text)
                except BadFrame:
                    raise _Ended(_BAD_MESSAGE) from None
                await self._send(PONG)
        except _Ended as ended:
            return ended.outcome
        except Exception:
            return self._failed()

    # -- the socket --

    async def _receive(self) -> str:
        try:
            return await self._conn.receive_text()
        except self._disconnect_errors:
            raise _Ended(_CLIENT_GONE) from None

    async def _send(self, frame: Frame) -> None:
        """Sends a frame (events and snapshots are counted). No lock: an ASGI send writes its whole frame
        at once, so the pump's and the reader's never mix."""
        if self._sends == 0:
            self.sending_since = time.monotonic()
            self._watchdog.watch(self)
        self._sends += 1
        try:
            await self._conn.send_text(frame.text)
        except self._disconnect_errors:
            raise _Ended(_CLIENT_GONE) from None
        finally:
            self._sends -= 1
            if self._sends == 0:
                self.sending_since = None
                self._watchdog.forget(self)
        if frame.kind == "event":
            self._events_sent += 1
        elif frame.kind == "snapshot":
            self._snapshots_sent += 1

    async def _close(self, outcome: _Outcome) -> None:
        assert outcome.code is not None
        undeliverable: tuple[type[BaseException], ...] = (TimeoutError, *self._disconnect_errors)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._conn.close(outcome.code, outcome.reason)
        except undeliverable as exc:
            logger.debug("progress socket close(%s) not delivered: %r", outcome.code, exc)


def _log_session(result: SessionResult) -> None:
    logger.info(
        "progress socket ended: user=%s code=%s reason=%r duration=%.1fs events=%d snapshots=%d",
        result.user_id,
        result.close_code,
        result.reason,
        result.duration_s,
        result.events_sent,
        result.snapshots_sent,
    )
