"""Revoking a token, deleting a user or a token expiring closes every socket opened with it, on every web
process, with 4401, within 2 s; other users' sockets stay open (docs/design.md, "Revocation").

The latencies (from the commit to the close frame's arrival) are printed: run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import websockets
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection

from app.services import users as user_service
from db.models import User
from testkit.accounts import Account
from testkit.harness import READ_TIMEOUT_S, ServerProcess, app_env


@pytest.fixture
async def two_servers(database_url: str, tmp_path: Path) -> AsyncIterator[list[ServerProcess]]:
    servers = [ServerProcess(env=app_env(database_url), log_path=tmp_path / f"web{i}.log") for i in (1, 2)]
    try:
        await asyncio.gather(*(server.start() for server in servers))
        yield servers
    finally:
        await asyncio.gather(*(server.stop() for server in servers))


async def ready_socket(server: ServerProcess, token: str) -> ClientConnection:
    """A socket past its hello: snapshot and ready received."""
    ws = await websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S)
    await ws.send(json.dumps({"type": "hello", "token": token, "after": None}))
    kinds = [json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))["type"] for _ in range(2)]
    assert kinds == ["snapshot", "ready"]
    return ws


async def sockets_on(servers: list[ServerProcess], token: str, per_server: int = 2) -> list[ClientConnection]:
    return [await ready_socket(server, token) for server in servers for _ in range(per_server)]


async def close_of(ws: ClientConnection) -> tuple[int | None, str, float]:
    """Reads until the server closes the socket: its code, its reason, and when (monotonic) it arrived."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
    except websockets.ConnectionClosed as closed:
        at, received = time.monotonic(), closed.rcvd
        return (received.code, received.reason, at) if received else (None, "", at)


async def still_answers(ws: ClientConnection) -> bool:
    await ws.send(json.dumps({"type": "ping"}))
    answer: dict[str, str] = json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))
    return answer["type"] == "pong"


async def expect_closed(
    what: str, started: float, doomed: list[ClientConnection], kept: list[ClientConnection], reason: str
) -> None:
    """Every doomed socket closes 4401 with `reason`; every kept one still answers. Prints the latencies."""
    closes = await asyncio.gather(*(close_of(ws) for ws in doomed))
    assert [(code, why) for code, why, _at in closes] == [(4401, reason)] * len(doomed)
    assert [await still_answers(ws) for ws in kept] == [True] * len(kept)
    latencies = sorted(at - started for _code, _reason, at in closes)
    print(
        f"\n{what}: {len(closes)} sockets on 2 web processes closed 4401 "
        f"{latencies[0] * 1000:.0f}-{latencies[-1] * 1000:.0f} ms after the commit"
    )
    for ws in kept:
        await ws.close()


async def test_revoking_a_token_closes_its_sockets_on_every_web_process(
    two_servers: list[ServerProcess],
    alice: Account,
    bob: Account,
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    """Every socket opened with a revoked token closes 4401 on both processes; the same user's other token
    and another user keep theirs."""
    async with session_maker() as session:
        user = await session.get(User, alice.user_id)
        assert user is not None
        other_token = (await user_service.issue_token(session, user, "second")).secret
        await session.commit()
    revoked = await sockets_on(two_servers, alice.token)
    kept = await sockets_on(two_servers, other_token) + await sockets_on(two_servers, bob.token)

    async with session_maker() as session:
        await user_service.revoke_token(session, alice.token_id)
        started = time.monotonic()
        await session.commit()

    await expect_closed("revoked token", started, revoked, kept, "token revoked")


async def test_deleting_a_user_closes_their_sockets_on_every_web_process(
    two_servers: list[ServerProcess],
    alice: Account,
    bob: Account,
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    """A deleted user's sockets all close 4401; another user's stay open."""
    doomed = await sockets_on(two_servers, alice.token)
    kept = await sockets_on(two_servers, bob.token)

    async with session_maker() as session:
        await session.execute(delete(User).where(User.id == alice.user_id))
        started = time.monotonic()
        await session.commit()

    await expect_closed("deleted user", started, doomed, kept, "token deleted")


async def test_an_expiring_token_closes_its_sockets_when_it_expires(
    two_servers: list[ServerProcess],
    alice: Account,
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    """A token issued with an expiry opens sockets until then; at expiry they close 4401 "token expired"."""
    async with session_maker() as session:
        user = await session.get(User, alice.user_id)
        assert user is not None
        issued = await user_service.issue_token(session, user, "brief", expires_in=timedelta(seconds=3))
        await session.commit()
    assert issued.expires_at is not None
    expiring = await sockets_on(two_servers, issued.secret, per_server=1)

    closes = await asyncio.gather(*(close_of(ws) for ws in expiring))

    assert [(code, reason) for code, reason, _at in closes] == [(4401, "token expired")] * len(expiring)
    remaining_s = issued.expires_at.timestamp() - time.time()
    assert remaining_s <= 0.1, "closed before the token expired"
