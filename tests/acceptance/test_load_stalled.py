"""docs/design.md, invariants 1, 2 and 5 under load: 500 sockets of 20 users on one web process, one of
them stalled (a raw socket that stops reading after its hello). Every healthy socket gets exactly its user's
events; the stalled one's backlog is cut short (a snapshot, or a close for being slow) instead of piling up,
and when it reads again its stream is honest; the server's memory stays bounded.

No timing is asserted: how much the stalled socket slows the others is measured by `python -m bench
--only P6`. Here each writer stays at most `WINDOW` events ahead of its user's slowest healthy socket
(awaiting their progress, never sleeping), so a slow CI machine cannot push a healthy socket into an
overflow and the invariants hold exactly on any machine.

The stalled user has 6 sockets (the stalled one and 5 healthy ones that share its channel and its
notifications) and the 19 others 26 each: the stalled user's stream must be big (see STALLED_EVENTS),
and every healthy socket of that user has to read all of it in this one test process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection

from testkit.accounts import Account, create_account
from testkit.harness import READ_TIMEOUT_S, EventWriter, Ledger, LiveClient, ServerProcess, app_env
from testkit.rawsocket import OP_CLOSE, RawWebSocket

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test

USERS = 20
STALLED_USER_SOCKETS = 6
"""The stalled socket and 5 healthy ones of the same user."""
OTHER_USER_SOCKETS = 26
SOCKETS = STALLED_USER_SOCKETS + (USERS - 1) * OTHER_USER_SOCKETS
EVENTS_PER_USER = 30
"""Each in its own transaction, as a worker writes them."""
STALLED_BATCH = 20
"""The stalled user's events a transaction."""
PAD = 300
STALLED_PAD = 7400
"""~7.7 KB an event: about as big as a NOTIFY payload may be before the trigger truncates it (7,900 B)."""
HUB_QUEUE = 1000
"""`Hub`'s per-socket queue (its default `queue_size`, what the app uses)."""
WINDOW = 200
"""How far a writer may run ahead of its user's slowest healthy socket: well below HUB_QUEUE."""
RSS_GROWTH_LIMIT_MB = 100


def kernel_buffer_bytes() -> int:
    """The most a TCP send buffer may hold here (tcp_wmem's maximum); 4 MB when unknown."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 2**20


STALLED_EVENTS = kernel_buffer_bytes() // (STALLED_PAD + 200) + HUB_QUEUE + 200
"""The stalled user's events: more than the stalled socket's kernel send buffer, uvicorn's 64 KB write
buffer (~9 events) and its hub queue can hold together, so its backlog must be cut short (about 1,750
events, 13 MB, with the usual 4 MB buffer maximum)."""


@dataclass
class LoadClient(LiveClient):
    """A LiveClient without permessage-deflate (the server's zlib state would swamp the RSS figure) that
    signals `ready` and every frame it handles (so the test awaits progress instead of polling) and keeps
    seqs, not whole events."""

    compress: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    progressed: asyncio.Event = field(default_factory=asyncio.Event)
    """Shared by a user's sockets: set whenever one of them handles a frame."""

    async def session(self, ws: ClientConnection) -> bool:
        """LiveClient's, with a timeout scope per read instead of a task per read (500 sockets here)."""
        try:
            while True:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    message = await ws.recv()
                if self.handle(json.loads(message)):
                    return True
        except websockets.ConnectionClosed as closed:
            self.ledger.close_codes.append(closed.rcvd.code if closed.rcvd else None)
            return False

    def handle(self, frame: dict[str, Any]) -> bool:
        done = super().handle(frame)
        self.ledger.events.clear()
        if frame["type"] == "ready":
            self.ready.set()
        self.progressed.set()
        return done


@pytest.fixture
def enough_descriptors() -> Iterator[None]:
    """500 client sockets here and 500 in the server (which inherits this limit; see bench/rlimit.py):
    raise the soft RLIMIT_NOFILE to 4,096 for the test when it is lower, and put it back after."""
    wanted = 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < 2 * SOCKETS + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for {SOCKETS} sockets on each side")
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
    )
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
async def load_server(
    enough_descriptors: None, database_url: str, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    env = app_env(database_url, MAX_SOCKETS_PER_USER=str(OTHER_USER_SOCKETS))
    process = ServerProcess(env=env, log_path=tmp_path / "server.log")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def open_stalled(server: ServerProcess, account: Account) -> tuple[RawWebSocket, int]:
    """A raw socket that reads its snapshot and `ready`, then nothing; returns it with the S of `ready`."""
    raw = await asyncio.to_thread(RawWebSocket, "127.0.0.1", server.port, "/api/ws/progress")
    raw.send_text(json.dumps({"type": "hello", "token": account.token, "after": None}))
    first = [json.loads((await asyncio.to_thread(raw.recv_message))[1]) for _ in range(2)]
    assert [frame["type"] for frame in first] == ["snapshot", "ready"]
    return raw, first[1]["seq"]


async def write_with_window(
    dsn: str, writer: EventWriter, events: int, batch: int, healthy: list[LoadClient], user: int
) -> None:
    """Writes `events` events, `batch` a transaction, never more than WINDOW ahead of the slowest of
    `healthy`."""
    progressed = healthy[0].progressed
    conn = await asyncpg.connect(dsn)
    try:
        await writer.create_job(conn)
        for written in range(0, events, batch):
            while written + batch - min(client.ledger.last_seq or 0 for client in healthy) > WINDOW:
                progressed.clear()
                try:
                    await asyncio.wait_for(progressed.wait(), READ_TIMEOUT_S)
                except TimeoutError:
                    positions = sorted(client.ledger.last_seq or 0 for client in healthy)
                    raise AssertionError(
                        f"user {user}'s healthy sockets stopped at {positions[:5]} with {written} written"
                    ) from None
            if batch == 1:
                await writer.write(conn)
            else:
                await writer.write_many(conn, min(batch, events - written))
    finally:
        await conn.close()


async def read_stalled_again(
    server: ServerProcess, stalled: RawWebSocket, account: Account, start: int
) -> tuple[Ledger, bool]:
    """Reads the stalled socket up to its user's last event (each read bounded by the raw socket's 15 s
    timeout). If the server has closed it meanwhile (1013 too slow, or 1011 when the stall outlasted the
    keepalive), reconnects with `after` as any client would. Returns the ledger and whether it was closed."""
    ledger = Ledger(last_seq=start)
    reader = LoadClient(server.ws_url, account.token, ledger=ledger)
    while ledger.last_seq != STALLED_EVENTS:
        try:
            opcode, payload = await asyncio.to_thread(stalled.recv_message)
        except ConnectionResetError:
            # Closed by the keepalive while our pong to its (late-read) ping was on the way: data unread
            # at close() makes the server's kernel answer with a reset instead of the rest of the stream.
            opcode, payload = OP_CLOSE, struct.pack("!H", 1011)
        if opcode == OP_CLOSE:
            assert struct.unpack("!H", payload[:2])[0] in {1011, 1013}
            reader.stop_when = lambda ledger: ledger.last_seq == STALLED_EVENTS
            await reader.run(deadline_s=60)
            return ledger, True
        reader.handle(json.loads(payload))
    return ledger, False


async def test_five_hundred_sockets_one_stalled(
    load_server: ServerProcess, database_url: str, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    """500 sockets of 20 users, one stalled: the 499 others get exactly their user's events (no gap,
    duplicate, foreign event, resync or reconnect); the stalled one is cut short, then honest; the
    server's memory stays bounded."""
    server = load_server
    assert server.process is not None
    server_rss = psutil.Process(server.process.pid)
    accounts = [await create_account(session_maker, f"load{index}@example.com") for index in range(USERS)]
    writers = [
        EventWriter(
            database_url, account.user_id, total=10**6, message_pad=STALLED_PAD if index == 0 else PAD
        )
        for index, account in enumerate(accounts)
    ]
    counts = [STALLED_EVENTS if index == 0 else EVENTS_PER_USER for index in range(USERS)]
    progressed = [asyncio.Event() for _ in range(USERS)]

    stalled, stalled_start = await open_stalled(server, accounts[0])
    readers: list[asyncio.Task[Ledger]] = []
    try:
        clients = [
            [
                LoadClient(
                    server.ws_url,
                    account.token,
                    job_ids={str(writer.job_id)},
                    stop_when=lambda ledger, last=count: ledger.last_seq == last,
                    progressed=progressed[index],
                )
                for _ in range(STALLED_USER_SOCKETS - 1 if index == 0 else OTHER_USER_SOCKETS)
            ]
            for index, (account, writer, count) in enumerate(zip(accounts, writers, counts, strict=True))
        ]
        everyone = [client for group in clients for client in group]
        assert len(everyone) + 1 == SOCKETS == 500
        readers += [asyncio.create_task(client.run(deadline_s=240)) for client in everyone]
        await asyncio.wait_for(asyncio.gather(*(client.ready.wait() for client in everyone)), 120)
        rss_before = server_rss.memory_info().rss

        await asyncio.gather(
            *(
                write_with_window(
                    database_url, writer, count, STALLED_BATCH if index == 0 else 1, group, index
                )
                for index, (writer, count, group) in enumerate(zip(writers, counts, clients, strict=True))
            )
        )
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        rss_growth_mb = (server_rss.memory_info().rss - rss_before) / 2**20

        for index, group in enumerate(clients):
            for client in group:
                ledger = client.ledger
                assert ledger.foreign_events == 0, f"a socket of user {index} got another user's event"
                assert ledger.seqs == list(range(1, counts[index] + 1)), f"user {index}: gap or duplicate"
                assert (ledger.connects, ledger.snapshots) == (1, 1), (
                    f"a healthy socket of user {index} was dropped or resynced: {ledger.close_codes}"
                )
        assert rss_growth_mb < RSS_GROWTH_LIMIT_MB, f"the server grew {rss_growth_mb:.0f} MB"

        ledger, closed = await read_stalled_again(server, stalled, accounts[0], stalled_start)
    finally:
        stalled.close()
        for reader in readers:  # after a failure: no client may outlive the test on the shared loop
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    assert ledger.last_seq == STALLED_EVENTS
    assert ledger.gaps(start=stalled_start) == [], "after a snapshot with S the next event is S+1"
    assert ledger.snapshots >= 1 or closed, (
        f"{STALLED_EVENTS} events of {STALLED_PAD:,}+ bytes cannot all wait in the kernel and a "
        f"{HUB_QUEUE}-item queue: the stalled socket needed a snapshot or a close"
    )
