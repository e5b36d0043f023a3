"""`bookmarks run --wc 2`: two web processes on one port, each with its own hub (docs/scaling.md): sockets
land on both, and every socket gets its user's events exactly once, in seq order, whichever holds it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import psutil

from testkit.accounts import Account
from testkit.harness import ROOT, EventWriter, LiveClient, app_env, free_port

BOOKMARKS = Path(sys.executable).with_name("bookmarks")
EVENTS = 30
DEADLINE_S = 60.0


@contextlib.asynccontextmanager
async def bookmarks_run(database_url: str, port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(BOOKMARKS), "run", "--wc", "2", "--port", str(port)],
            cwd=ROOT, env=app_env(database_url), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def hub_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bookmarks-hub'"
            " AND datname = current_database()"
        )
    finally:
        await conn.close()
    return count


async def until(what: str, check: Callable[[], Awaitable[bool]], deadline: float) -> None:
    while not await check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.1)


def sockets_per_process(run: subprocess.Popen[bytes], port: int) -> dict[int, int]:
    """Established connections on the port, per web process (the children of `bookmarks run`)."""
    counts = {}
    for child in psutil.Process(run.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            connections = child.net_connections(kind="tcp")
            counts[child.pid] = sum(
                1
                for c in connections
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            )
    return {pid: count for pid, count in counts.items() if count}


async def test_two_web_processes_each_deliver_every_event_once_in_order(
    database_url: str, alice: Account, tmp_path: Path
) -> None:
    """With `--wc 2` each process runs its own hub; sockets on both processes get seq 1..N, no gap, no
    duplicate, the same as one process would give them."""
    port = free_port()
    deadline = time.monotonic() + DEADLINE_S
    async with bookmarks_run(database_url, port, tmp_path / "run.log") as run:

        async def healthy() -> bool:
            async with httpx.AsyncClient(timeout=2.0) as client:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"http://127.0.0.1:{port}/api/health")).status_code == 200
            return False

        await until("the server answers", healthy, deadline)

        async def two_hubs() -> bool:
            return await hub_count(database_url) == 2

        await until("two hubs connected", two_hubs, deadline)

        url = f"ws://127.0.0.1:{port}/api/ws/progress"
        clients: list[LiveClient] = []
        tasks: list[asyncio.Task[object]] = []
        # The kernel hands each connection to whichever process accepts first: open until both hold some.
        while len(sockets_per_process(run, port)) < 2:
            assert time.monotonic() < deadline and len(clients) < 20, sockets_per_process(run, port)
            client = LiveClient(url, alice.token, stop_when=lambda ledger: ledger.last_seq == EVENTS)
            clients.append(client)
            tasks.append(asyncio.create_task(client.run(deadline_s=DEADLINE_S)))

            async def ready(client: LiveClient = client) -> bool:
                return bool(client.ledger.resumed)

            await until("the socket is ready", ready, deadline)

        writer = EventWriter(database_url, alice.user_id, total=EVENTS)
        conn = await asyncpg.connect(database_url)
        try:
            await writer.create_job(conn)
            for _ in range(EVENTS):
                await writer.write(conn)
        finally:
            await conn.close()
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(*tasks)

    assert len(clients) >= 2
    for client in clients:
        assert client.ledger.seqs == list(range(1, EVENTS + 1))
        assert client.ledger.gaps() == []
        assert client.ledger.connects == 1
