"""docs/design.md, invariant 5: a stalled socket neither delays the others nor grows server memory,
and when it reads again its seq stream is still honest (every event, or a snapshot then S+1 onwards)."""

from __future__ import annotations

import asyncio
import json
import struct

import asyncpg
import psutil

from testkit.accounts import Account
from testkit.harness import READ_TIMEOUT_S, EventWriter, Ledger, LiveClient, ServerProcess
from testkit.rawsocket import OP_CLOSE, RawWebSocket

EVENTS = 6000
PAD = 1500  # ~1.8 KB per event: 11 MB in all, more than the 4 MB kernel send buffer can hide


async def test_a_stalled_socket_does_not_hold_back_others_and_stays_honest(
    server: ServerProcess, database_url: str, alice: Account
) -> None:
    """While one socket reads nothing, another gets all 6,000 events; the stalled one then catches up
    through a snapshot (or a clean replay), never a silent gap, and the server's memory stays bounded."""
    assert server.process is not None
    server_rss = psutil.Process(server.process.pid)
    rss_before = server_rss.memory_info().rss

    stalled = RawWebSocket("127.0.0.1", server.port, "/api/ws/progress")
    stalled.send_text(json.dumps({"type": "hello", "token": alice.token, "after": None}))
    first = [json.loads(stalled.recv_message()[1]) for _ in range(2)]
    assert [f["type"] for f in first] == ["snapshot", "ready"]

    healthy = LiveClient(server.ws_url, alice.token, stop_when=lambda ledger: ledger.last_seq == EVENTS)
    reader = asyncio.create_task(healthy.run(deadline_s=120))
    async with asyncio.timeout(READ_TIMEOUT_S):
        while not healthy.ledger.resumed:
            await asyncio.sleep(0.01)

    writer = EventWriter(database_url, alice.user_id, total=EVENTS, message_pad=PAD)
    conn = await asyncpg.connect(database_url)
    try:
        await writer.create_job(conn)
        for _ in range(EVENTS):
            await writer.write(conn)
    finally:
        await conn.close()

    ledger = await reader
    assert ledger.seqs == list(range(1, EVENTS + 1)), "the healthy socket must not be held back"
    rss_growth_mb = (server_rss.memory_info().rss - rss_before) / 2**20
    assert rss_growth_mb < 100, f"server grew {rss_growth_mb:.0f} MB for one stalled socket"

    stalled_ledger = Ledger(last_seq=first[1]["seq"])
    resumed_reader = LiveClient(server.ws_url, alice.token, ledger=stalled_ledger)
    closed_too_slow = False
    try:
        while stalled_ledger.last_seq != EVENTS:
            opcode, payload = await asyncio.to_thread(stalled.recv_message)
            if opcode == OP_CLOSE:
                # Closed for being too slow (1013), or by the server's keepalive when the stall outlasted
                # its ping timeout (1011): either way a reconnect with `after` must finish the stream.
                assert struct.unpack("!H", payload[:2])[0] in {1011, 1013}
                closed_too_slow = True
                resumed_reader.stop_when = lambda ledger: ledger.last_seq == EVENTS
                await resumed_reader.run(deadline_s=60)
                break
            resumed_reader.handle(json.loads(payload))
    finally:
        stalled.close()
    assert stalled_ledger.last_seq == EVENTS
    assert stalled_ledger.gaps(start=first[1]["seq"]) == [], "after a snapshot with S the next event is S+1"
    assert stalled_ledger.snapshots >= 1 or closed_too_slow, (
        "11 MB cannot sit in buffers: no snapshot, no 1013"
    )
