"""A short memory of the valid tokens the progress socket checked, so that a reconnect storm (every socket
of a restarted web process coming back at once, docs/benchmarks.md P8) costs one query per token, not one
per socket.

Safe with revocation (docs/design.md, "Revocation") because it forgets everything as soon as the hub's
auth epoch moves, i.e. the moment any token or user change is announced, or the hub loses or regains its
connection; an entry remembers the epoch read before its token was checked, so a change announced during
that check makes it stale at once. While the hub is disconnected nothing is remembered or answered from
memory: a change committed then is announced to nobody. An entry is also dropped when its token expires,
and after `ttl_s` (the token's `last_used_at` is then refreshed by the next check, as the API does at most
once a minute).
"""

from __future__ import annotations

import time
from typing import Final, NamedTuple, Protocol

from app.live.store import LiveToken

TTL_S: Final = 60.0
MAX_TOKENS: Final = 100_000


class EpochSource(Protocol):
    @property
    def auth_epoch(self) -> int: ...

    @property
    def connected(self) -> bool:
        """Whether changes are being announced to it (its LISTEN connection is up)."""
        ...


class _Entry(NamedTuple):
    token: LiveToken
    checked_at: float


class RecentTokens:
    def __init__(self, hub: EpochSource, *, ttl_s: float = TTL_S, max_tokens: int = MAX_TOKENS) -> None:
        self._hub = hub
        self._ttl_s = ttl_s
        self._max_tokens = max_tokens
        self._epoch = hub.auth_epoch
        self._entries: dict[str, _Entry] = {}

    def get(self, token_hash: str) -> LiveToken | None:
        """The token, if it was valid when checked less than `ttl_s` ago and nothing changed since."""
        self._forget_if_changed()
        if not self._hub.connected:
            return None
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expires_at = entry.token.expires_at
        if time.monotonic() - entry.checked_at > self._ttl_s or (
            expires_at is not None and expires_at.timestamp() <= time.time()
        ):
            del self._entries[token_hash]
            return None
        return entry.token

    def put(self, token_hash: str, token: LiveToken, *, checked_epoch: int) -> None:
        """Remembers a valid token; `checked_epoch`: the hub's auth epoch read before the check."""
        self._forget_if_changed()
        if checked_epoch != self._epoch or not self._hub.connected:
            return  # a change was announced while it was being checked, or could not be
        if len(self._entries) >= self._max_tokens:
            self._entries.clear()
        self._entries[token_hash] = _Entry(token, time.monotonic())

    def _forget_if_changed(self) -> None:
        if self._hub.auth_epoch != self._epoch:
            self._entries.clear()
            self._epoch = self._hub.auth_epoch
