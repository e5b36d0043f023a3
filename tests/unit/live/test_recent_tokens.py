"""The progress socket's memory of valid tokens: it never outlives a change the hub announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from app.live.store import LiveToken
from app.live.tokens import RecentTokens


class Hub:
    auth_epoch = 3
    connected = True


def token(expires_at: datetime | None = None) -> LiveToken:
    return LiveToken(uuid4(), uuid4(), expires_at)


def test_a_checked_token_is_remembered() -> None:
    """A valid token put with the current epoch is found again."""
    tokens, valid = RecentTokens(Hub()), token()
    tokens.put("h", valid, checked_epoch=3)
    assert tokens.get("h") == valid
    assert tokens.get("other") is None


def test_any_announced_change_forgets_every_token() -> None:
    """Once the hub's auth epoch moves (a revocation anywhere, a reconnect), nothing remembered is used."""
    hub = Hub()
    tokens = RecentTokens(hub)
    tokens.put("h", token(), checked_epoch=3)
    hub.auth_epoch = 4
    assert tokens.get("h") is None


def test_a_token_checked_while_a_change_was_announced_is_not_remembered() -> None:
    """The epoch read before the check is older than the hub's now: the answer may be stale."""
    tokens = RecentTokens(Hub())
    tokens.put("h", token(), checked_epoch=2)
    assert tokens.get("h") is None


def test_an_expired_token_and_an_old_entry_are_dropped() -> None:
    """A token past its expiry, or checked longer ago than the time to live, is checked again."""
    tokens = RecentTokens(Hub(), ttl_s=0.0)
    tokens.put("old", token(), checked_epoch=3)
    assert tokens.get("old") is None
    lasting = RecentTokens(Hub())
    lasting.put("expired", token(datetime.now(UTC) - timedelta(seconds=1)), checked_epoch=3)
    assert lasting.get("expired") is None


def test_nothing_is_answered_or_remembered_while_the_hub_is_disconnected() -> None:
    """While the hub's LISTEN connection is down a revocation is announced to nobody: every hello is
    checked against the table, and what those checks find is not remembered."""
    hub = Hub()
    tokens, valid = RecentTokens(hub), token()
    tokens.put("h", valid, checked_epoch=3)
    hub.connected = False
    assert tokens.get("h") is None
    tokens.put("other", valid, checked_epoch=3)
    hub.connected = True
    assert tokens.get("other") is None
