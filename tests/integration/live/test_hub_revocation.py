"""The hub ends subscriptions whose token stops being valid: revoked, deleted, expired, its user deleted,
also when the change was announced while the hub was disconnected (docs/design.md, "Revocation")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import pytest

from app.live.hub import AUTH_CHANNEL, Credential, Hub, Revoked, Subscription
from app.live.store import LiveToken
from app.live.tokens import RecentTokens

from .conftest import WAIT_S, HubFactory, Rows
from .test_live_hub import WaitUntil, terminate_hub_backend


async def subscribe(hub: Hub, user: UUID, token: UUID, *, epoch: int | None = None) -> Subscription:
    sub = await hub.subscribe(user, Credential(token, None, hub.auth_epoch if epoch is None else epoch))
    sub.start_at(0)
    return sub


async def revoked_reason(sub: Subscription) -> str:
    with pytest.raises(Revoked) as raised:
        async with asyncio.timeout(WAIT_S):
            await sub.next_frame()
    return str(raised.value)


async def still_open(sub: Subscription) -> bool:
    """True when next_frame neither raises nor returns within a short wait (nothing to deliver)."""
    try:
        async with asyncio.timeout(0.3):
            await sub.next_frame()
    except TimeoutError:
        return True
    return False


async def test_revoking_a_token_ends_its_subscriptions_only(hub: Hub, rows: Rows) -> None:
    """Revoking a token ends every subscription opened with it; the same user's other token is untouched."""
    user = await rows.user()
    revoked, kept = await rows.token(user), await rows.token(user)
    first, second, other = (
        await subscribe(hub, user, revoked),
        await subscribe(hub, user, revoked),
        await subscribe(hub, user, kept),
    )

    await rows.db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", revoked)

    assert await revoked_reason(first) == "token revoked"
    assert await revoked_reason(second) == "token revoked"
    assert await still_open(other)


async def test_deleting_a_user_ends_its_subscriptions(hub: Hub, rows: Rows) -> None:
    """A deleted user's subscriptions end; another user's do not."""
    user, other_user = await rows.user(), await rows.user()
    sub = await subscribe(hub, user, await rows.token(user))
    other = await subscribe(hub, other_user, await rows.token(other_user))

    await rows.db.execute("DELETE FROM users WHERE id = $1", user)

    assert await revoked_reason(sub) == "token deleted"
    assert await still_open(other)


async def test_emptying_the_tokens_table_ends_every_subscription(hub: Hub, rows: Rows) -> None:
    """A TRUNCATE fires no row trigger: its statement trigger announces it, and every socket's token is
    re-checked (all of them gone here)."""
    first_user, second_user = await rows.user(), await rows.user()
    first = await subscribe(hub, first_user, await rows.token(first_user))
    second = await subscribe(hub, second_user, await rows.token(second_user))

    await rows.db.execute("TRUNCATE api_tokens")

    assert await revoked_reason(first) == "token deleted"
    assert await revoked_reason(second) == "token deleted"


async def test_a_token_that_expires_ends_its_subscription_when_it_does(hub: Hub, rows: Rows) -> None:
    """The expiry in the credential arms a timer: the subscription ends when the token expires."""
    user = await rows.user()
    token = await rows.token(user, expires_in_s=0.5)
    expires_at = await rows.db.fetchval("SELECT expires_at FROM api_tokens WHERE id = $1", token)
    sub = await hub.subscribe(user, Credential(token, expires_at, hub.auth_epoch))
    sub.start_at(0)

    assert await revoked_reason(sub) == "token expired"


async def test_an_expiry_timer_armed_with_an_outdated_expiry_rechecks_instead_of_revoking(
    hub: Hub, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription whose timer was armed with an expiry the token no longer has (extended since) is not
    ended when that moment passes: the timer re-checks the token, finds it valid, and waits for the new
    expiry."""
    user = await rows.user()
    token = await rows.token(user, expires_in_s=3600)
    outdated = await rows.db.fetchval("SELECT now() + interval '0.2 s'")
    checked = asyncio.Event()
    check = hub.store.token_states

    async def noted(*args: Any) -> Any:
        states = await check(*args)
        checked.set()
        return states

    monkeypatch.setattr(hub.store, "token_states", noted)
    sub = await hub.subscribe(user, Credential(token, outdated, hub.auth_epoch))
    sub.start_at(0)

    async with asyncio.timeout(WAIT_S):
        await checked.wait()  # the timer's re-check
    assert await still_open(sub)


async def test_a_shortened_expiry_is_announced_and_applied(hub: Hub, rows: Rows) -> None:
    """Moving a token's expiry into the past ends its subscription at once."""
    user = await rows.user()
    token = await rows.token(user)
    sub = await subscribe(hub, user, token)

    await rows.db.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE id = $1", token)

    assert await revoked_reason(sub) == "token expired"


async def test_a_revocation_during_an_outage_is_found_by_the_recheck(
    make_hub: HubFactory, rows: Rows, live_dsn: str, wait_until: WaitUntil
) -> None:
    """A notification lost with the connection does not matter: the reconnect re-checks every token."""
    hub = await make_hub(backoff_initial_s=1.0)
    user = await rows.user()
    token = await rows.token(user)
    sub = await subscribe(hub, user, token)

    await terminate_hub_backend(live_dsn)
    await wait_until(lambda: not hub.status().connected)
    await rows.db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token)

    assert await revoked_reason(sub) == "token revoked"
    assert hub.status().reconnects == 1


async def test_a_token_revoked_while_the_hub_is_disconnected_is_not_answered_from_memory(
    make_hub: HubFactory, rows: Rows, live_dsn: str, wait_until: WaitUntil
) -> None:
    """A token remembered as valid (RecentTokens) is forgotten the moment the hub's connection is lost: a
    revocation committed during the outage, announced to nobody, cannot admit a new socket from memory."""
    hub = await make_hub(backoff_initial_s=5.0)
    user = await rows.user()
    token = await rows.token(user)
    recent = RecentTokens(hub)
    recent.put("hash", LiveToken(token, user, None), checked_epoch=hub.auth_epoch)
    assert recent.get("hash") is not None

    await terminate_hub_backend(live_dsn)
    await wait_until(lambda: not hub.status().connected)
    await rows.db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token)

    assert recent.get("hash") is None


async def test_a_change_announced_while_the_token_was_checked_is_rechecked(hub: Hub, rows: Rows) -> None:
    """A credential checked before the latest announced change (an older epoch) is re-checked by subscribe
    itself: a revocation that committed between the token check and the subscription refuses it, and
    nothing stays subscribed."""
    user = await rows.user()
    token = await rows.token(user)
    epoch = hub.auth_epoch
    await rows.db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token)
    async with asyncio.timeout(WAIT_S):
        while hub.auth_epoch == epoch:  # the notification reached the hub, matching no subscription
            await asyncio.sleep(0.005)

    with pytest.raises(Revoked, match="token revoked"):
        await subscribe(hub, user, token, epoch=epoch)  # before the socket sends its initial state

    assert await hub.listening_channels() == [AUTH_CHANNEL]


async def test_a_token_check_that_fails_unexpectedly_is_retried(
    make_hub: HubFactory, rows: Rows, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A re-check that fails with something other than a lost connection is logged and tried again, not
    abandoned (which left a revoked token streaming)."""
    hub = await make_hub(backoff_initial_s=0.05)
    user = await rows.user()
    token = await rows.token(user)
    sub = await subscribe(hub, user, token)
    check = hub.store.token_states
    failures = [RuntimeError("a bug in the check, once")]

    async def failing_once(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await check(*args)

    monkeypatch.setattr(hub.store, "token_states", failing_once)
    await rows.db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token)

    assert await revoked_reason(sub) == "token revoked"
    assert failures == []
    assert [r.levelno for r in caplog.records if "token check failed" in r.getMessage()] == [logging.ERROR]
