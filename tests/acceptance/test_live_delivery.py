"""docs/design.md, invariants 1-3 and 5, through the real app: every event reaches each of its
user's sockets exactly once, in seq order, across reconnects, listener loss and server restarts."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from pathlib import Path

import asyncpg
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from testkit.accounts import Account, create_account
from testkit.harness import (
    READ_TIMEOUT_S,
    EventWriter,
    LiveClient,
    ServerProcess,
    app_env,
    history_seqs,
    table_seqs,
)


def until_seq(target: int):  # type: ignore[no-untyped-def]
    return lambda ledger: ledger.last_seq is not None and ledger.last_seq >= target


async def write_events(dsn: str, writer: EventWriter, count: int, *, pause_s: float = 0.0) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await writer.create_job(conn)
        last = 0
        for _ in range(count):
            last = await writer.write(conn, step=max(1, writer.total // count))
            if pause_s:
                await asyncio.sleep(pause_s)
        return last
    finally:
        await conn.close()


async def hub_backend_pids(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'bookmarks-hub' AND datname = current_database()"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def terminate(dsn: str, pid: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_each_socket_gets_exactly_its_users_events_in_order(
    server: ServerProcess, database_url: str, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    """Two users with two sockets each: every socket sees its user's seqs once, in order, = table = history."""
    users = [await create_account(session_maker, f"user{i}@example.com") for i in range(2)]
    writers = [EventWriter(database_url, user.user_id, total=300) for user in users]
    count = 150
    clients = [
        LiveClient(server.ws_url, user.token, job_ids={str(writer.job_id)}, stop_when=until_seq(count))
        for user, writer in zip(users, writers, strict=True)
        for _ in range(2)
    ]
    readers = [asyncio.create_task(client.run(deadline_s=60)) for client in clients]
    await wait_until_ready(clients)
    await asyncio.gather(*(write_events(database_url, w, count) for w in writers))
    await asyncio.gather(*readers)
    for index, client in enumerate(clients):
        user = users[index // 2]
        expected = await table_seqs(database_url, user.user_id)
        assert expected == list(range(1, count + 1))
        assert client.ledger.seqs == expected
        assert client.ledger.foreign_events == 0
        assert await history_seqs(server.base_url, user.token) == expected


async def wait_until_ready(clients: list[LiveClient]) -> None:
    async with asyncio.timeout(READ_TIMEOUT_S):
        while not all(client.ledger.resumed for client in clients):
            await asyncio.sleep(0.01)


async def test_reconnecting_with_after_resumes_without_gap_or_duplicate(
    server: ServerProcess, database_url: str, alice: Account
) -> None:
    """A client dropped 20 times at random moments mid-job resumes each time (resumed: true), losing nothing."""
    writer = EventWriter(database_url, alice.user_id, total=400)
    count = 400
    client = LiveClient(server.ws_url, alice.token, stop_when=until_seq(count))
    reader = asyncio.create_task(client.run(deadline_s=90))
    await wait_until_ready([client])
    producing = asyncio.create_task(write_events(database_url, writer, count, pause_s=0.004))
    rng = random.Random(7)
    for drop in range(20):
        async with asyncio.timeout(READ_TIMEOUT_S):
            while client.ws is None or len(client.ledger.resumed) <= drop:
                await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        await client.drop()
    await producing
    ledger = await reader
    assert ledger.seqs == list(range(1, count + 1))
    assert ledger.connects == 21
    assert ledger.snapshots == 1, "only the first connect starts from a snapshot; every reconnect replays"
    assert ledger.resumed[0] is False
    assert all(ledger.resumed[1:]), ledger.resumed


async def test_after_too_far_behind_gets_a_snapshot(
    database_url: str, alice: Account, tmp_path: Path
) -> None:
    """`after` more than REPLAY_MAX behind the stream head answers with a snapshot and resumed: false."""
    server = ServerProcess(env=app_env(database_url, REPLAY_MAX="10"), log_path=tmp_path / "server.log")
    await server.start()
    try:
        writer = EventWriter(database_url, alice.user_id, total=100)
        await write_events(database_url, writer, 30)
        async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as ws:
            await ws.send(json.dumps({"type": "hello", "token": alice.token, "after": 5}))
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))
            ready = json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))
        assert snapshot["type"] == "snapshot" and snapshot["seq"] == 30
        assert [job["job_id"] for job in snapshot["jobs"]] == [str(writer.job_id)]
        assert snapshot["jobs"][0]["processed"] == writer.processed
        assert ready == {"type": "ready", "seq": 30, "resumed": False}
        async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as ws:
            await ws.send(json.dumps({"type": "hello", "token": alice.token, "after": 25}))
            frames = [json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)) for _ in range(6)]
        assert [f["seq"] for f in frames[:5]] == [26, 27, 28, 29, 30]
        assert frames[5] == {"type": "ready", "seq": 30, "resumed": True}
    finally:
        await server.stop()


async def test_killing_the_listener_connection_loses_nothing(
    server: ServerProcess, database_url: str, alice: Account
) -> None:
    """pg_terminate_backend of the hub's LISTEN connection, 3 times mid-stream: sockets stay open, get all."""
    writer = EventWriter(database_url, alice.user_id, total=300)
    count = 300
    clients = [LiveClient(server.ws_url, alice.token, stop_when=until_seq(count)) for _ in range(2)]
    readers = [asyncio.create_task(client.run(deadline_s=90)) for client in clients]
    await wait_until_ready(clients)
    producing = asyncio.create_task(write_events(database_url, writer, count, pause_s=0.01))
    for _ in range(3):
        await asyncio.sleep(0.5)
        pids = await hub_backend_pids(database_url)
        assert len(pids) == 1, pids
        await terminate(database_url, pids[0])
    await producing
    for ledger in await asyncio.gather(*readers):
        assert ledger.seqs == list(range(1, count + 1))
        assert ledger.connects == 1, "the socket must stay open while the hub reconnects"


async def test_server_restart_closes_with_1012_and_clients_resume(
    server: ServerProcess, database_url: str, alice: Account
) -> None:
    """SIGTERM to the web process mid-stream: sockets get 1012, reconnect to the new process, lose nothing."""
    writer = EventWriter(database_url, alice.user_id, total=300)
    count = 300
    client = LiveClient(server.ws_url, alice.token, stop_when=until_seq(count))
    reader = asyncio.create_task(client.run(deadline_s=90))
    await wait_until_ready([client])
    producing = asyncio.create_task(write_events(database_url, writer, count, pause_s=0.01))
    await asyncio.sleep(0.8)
    await server.stop(signal.SIGTERM)
    await server.start()
    await producing
    ledger = await reader
    assert ledger.seqs == list(range(1, count + 1))
    assert 1012 in ledger.close_codes, ledger.close_codes
    assert ledger.connects >= 2
    # The client may stop at the last event before it reads the replay's `ready`: count snapshots instead.
    assert ledger.snapshots == 1, "only the first connect starts from a snapshot; the reconnect replays"


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        ('{"type":"hello","token":"sytb_not-a-real-token","after":null}', 4401),
        ('{"type":"hello","after":null}', 1008),  # no token, so none was checked: not 4401
        ('{"type":"subscribe","token":"x"}', 1008),
        ("{not json", 1008),
    ],
)
async def test_bad_hello_is_refused_with_its_close_code(server: ServerProcess, hello: str, code: int) -> None:
    """A wrong token closes 4401; a hello without a token, a first message that is not a hello, or
    malformed JSON, 1008 (no token was checked, so a client must not take it for a verdict on its token)."""
    async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as ws:
        await ws.send(hello)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_no_hello_within_5_seconds_is_refused(server: ServerProcess) -> None:
    """A client that never says hello is closed with 1008 after the hello timeout (not 4401: no token was
    checked)."""
    async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "no hello within 5 s")


async def test_a_revoked_token_is_refused(
    server: ServerProcess, alice: Account, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    """A token revoked after issue no longer opens a socket."""
    from sqlalchemy import select

    from app.services.users import revoke_token
    from db.models import ApiToken

    async with session_maker() as session:
        token_id = await session.scalar(select(ApiToken.id).where(ApiToken.user_id == alice.user_id))
        assert token_id is not None
        await revoke_token(session, token_id)
        await session.commit()
    async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as ws:
        await ws.send(json.dumps({"type": "hello", "token": alice.token, "after": None}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_more_sockets_than_the_limit_are_refused_with_4429(
    database_url: str, alice: Account, tmp_path: Path
) -> None:
    """The socket past MAX_SOCKETS_PER_USER for one user is closed with 4429; the others stay open."""
    server = ServerProcess(env=app_env(database_url, MAX_SOCKETS_PER_USER="3"), log_path=tmp_path / "s.log")
    await server.start()
    sockets = []
    try:
        for _ in range(3):
            ws = await websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S)
            sockets.append(ws)
            await ws.send(json.dumps({"type": "hello", "token": alice.token, "after": None}))
            kinds = [json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))["type"] for _ in range(2)]
            assert kinds == ["snapshot", "ready"]
        async with websockets.connect(server.ws_url, open_timeout=READ_TIMEOUT_S) as extra:
            await extra.send(json.dumps({"type": "hello", "token": alice.token, "after": None}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), READ_TIMEOUT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        await sockets[0].send('{"type":"ping"}')
        assert json.loads(await asyncio.wait_for(sockets[0].recv(), READ_TIMEOUT_S)) == {"type": "pong"}
    finally:
        for ws in sockets:
            await ws.close()
        await server.stop()
