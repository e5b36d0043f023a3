"""Reads of the progress stream for the hub, the WebSocket session and the history API.

Every method hands back the event JSON exactly as Postgres renders `data::text` (the same text the NOTIFY
trigger sends), so nothing is decoded and re-encoded per event on the way to a socket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, NamedTuple, cast
from uuid import UUID

import asyncpg

from db.queries import queries

CONNECTION_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    # admin_shutdown, crash_shutdown, cannot_connect_now: Postgres is restarting or failing over.
    asyncpg.exceptions.OperatorInterventionError,
    # "connection is closed": a pooled or dedicated connection the server already dropped.
    asyncpg.InterfaceError,
)
"""Errors that mean "the database is unreachable right now"; anything else is a bug worth raising."""

MAX_SEQ: Final = 2**63 - 1
"""seq is a bigint: a cursor beyond it is beyond any stream's head."""

RECENT_JOBS_S: Final = 600.0
"""A snapshot lists finished jobs for 10 minutes (docs/design.md, "The progress socket"); the dashboard
keeps them as long."""

SeqText = tuple[int, str]
"""One event: its seq and its JSON text."""


class LiveToken(NamedTuple):
    """A valid token, as the progress socket's hello presented it."""

    token_id: UUID
    user_id: UUID
    expires_at: datetime | None


class TokenState(NamedTuple):
    expires_at: datetime | None
    refusal: str | None
    """Why the token may no longer be used ("token revoked", "token expired"); None while it is valid."""


class EventStore:
    """The `progress_events` / `progress_streams` / `jobs` reads (and the socket's token check and the
    token states the hub re-checks), over a small asyncpg pool of its own."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> EventStore:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": "bookmarks-events"},
            reset=_nothing_to_reset,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def events_after(self, user_id: UUID, after: int, limit: int) -> list[SeqText]:
        rows = await self._pool.fetch(queries["progress_events_after"], user_id, after, limit)
        return _seq_texts(rows)

    async def event(self, user_id: UUID, seq: int) -> str | None:
        return cast(str | None, await self._pool.fetchval(queries["progress_event_by_seq"], user_id, seq))

    async def head_and_events(self, user_id: UUID, after: int, limit: int) -> tuple[int, list[SeqText]]:
        """The user's last seq and up to `limit` events after `after`, read in one statement (one MVCC
        snapshot: a commit in between cannot make an up-to-date reader look ahead of the stream)."""
        rows = await self._pool.fetch(queries["progress_resume"], user_id, after, limit)
        head = cast(int, rows[0]["last_seq"])
        return head, ([] if rows[0]["seq"] is None else _seq_texts(rows))

    async def replayable(self, user_id: UUID, after: int, limit: int) -> list[SeqText] | None:
        """Every event after `after`, when a reader positioned there may be brought up to date with them:
        they are all still retained, there are at most `limit`, and `after` is not beyond the stream's
        head. None otherwise: only a snapshot can keep that reader's stream honest.

        The one rule for a socket's first frames (its hello's `after`) and for the hub's catch-up.
        """
        if not 0 <= after <= MAX_SEQ:
            return None  # not a position in any stream: a snapshot, as for any cursor beyond the head
        head, events = await self.head_and_events(user_id, after, limit + 1)
        if after > head or len(events) > limit or not is_contiguous(after, events):
            return None  # from the future (a restored database), too far behind, or pruned under it
        if not events and after != head:
            return None  # everything after it pruned by retention
        return events

    async def snapshot(self, user_id: UUID, *, recent_s: float = RECENT_JOBS_S) -> tuple[int, str]:
        """S and a JSON array text of job states, both read in one statement (one MVCC snapshot)."""
        row = await self._fetch_one("progress_snapshot", user_id, recent_s)
        return cast(int, row["last_seq"]), cast(str, row["jobs"])

    async def job_history(self, user_id: UUID, job_id: UUID, after: int, limit: int) -> list[SeqText]:
        """A page of one job's events; empty when the job is not `user_id`'s (callers answer 404)."""
        rows = await self._pool.fetch(queries["progress_job_history"], job_id, user_id, after, limit)
        return _seq_texts(rows)

    async def user_history(self, user_id: UUID, after: int, limit: int) -> list[SeqText]:
        """A page of the user's whole stream: the WebSocket replay, over HTTP."""
        return await self.events_after(user_id, after, limit)

    async def live_token(self, token_hash: str) -> LiveToken | None:
        """The valid token with this hash (its use noted, as the API's check does), or None: one query on
        this pool, where the ORM session it replaced cost 40% of a socket's handshake."""
        row = await self._pool.fetchrow(queries["live_token"], token_hash)
        return None if row is None else LiveToken(row["id"], row["user_id"], row["expires_at"])

    async def token_states(self, token_ids: list[UUID]) -> dict[UUID, TokenState]:
        """The tokens among `token_ids` that still exist (the hub re-checks open sockets' tokens)."""
        rows = await self._pool.fetch(queries["token_states"], token_ids)
        return {row["id"]: TokenState(row["expires_at"], row["refusal"]) for row in rows}

    async def _fetch_one(self, query: str, *args: object) -> asyncpg.Record:
        """For the queries that always return exactly one row (aggregates over subqueries)."""
        row = await self._pool.fetchrow(queries[query], *args)
        assert row is not None, f"{query} returns one row by construction"
        return row


async def _nothing_to_reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Our queries leave no session state (no SET, LISTEN, cursor or advisory lock), so a connection goes
    back to the pool without asyncpg's default reset: a round trip after every query, a third of the
    database round trips of a socket's handshake. (asyncpg still rolls back a transaction left open.)"""


def _seq_texts(rows: list[asyncpg.Record]) -> list[SeqText]:
    return [(cast(int, row["seq"]), cast(str, row["data"])) for row in rows]


def is_contiguous(after: int, events: list[SeqText]) -> bool:
    """True when the events are exactly seqs after+1, after+2, ... (nothing pruned or skipped)."""
    return all(seq == after + offset for offset, (seq, _text) in enumerate(events, start=1))
