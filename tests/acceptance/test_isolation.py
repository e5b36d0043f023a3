"""docs/design.md, invariant 2 at scale: 50 users x 3 sockets on one web process, all writing at
once; no socket ever sees another user's event, and each sees all of its own."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from testkit.accounts import create_account
from testkit.harness import READ_TIMEOUT_S, EventWriter, LiveClient, ServerProcess, table_seqs

USERS = 50
SOCKETS_PER_USER = 3
EVENTS_PER_USER = 20


async def test_fifty_users_never_see_each_others_events(
    server: ServerProcess, database_url: str, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    """150 sockets of 50 users, 1,000 events written concurrently: every socket gets exactly its user's."""
    accounts = [await create_account(session_maker, f"iso{index}@example.com") for index in range(USERS)]
    writers = [EventWriter(database_url, account.user_id, total=EVENTS_PER_USER) for account in accounts]
    clients = [
        LiveClient(
            server.ws_url,
            account.token,
            job_ids={str(writer.job_id)},
            stop_when=lambda ledger: ledger.last_seq == EVENTS_PER_USER,
        )
        for account, writer in zip(accounts, writers, strict=True)
        for _ in range(SOCKETS_PER_USER)
    ]
    readers = [asyncio.create_task(client.run(deadline_s=120)) for client in clients]
    async with asyncio.timeout(60):
        while not all(client.ledger.resumed for client in clients):
            await asyncio.sleep(0.02)

    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=8)
    try:

        async def write_all(writer: EventWriter) -> None:
            async with pool.acquire() as conn:
                await writer.create_job(conn)
                for _ in range(EVENTS_PER_USER):
                    await writer.write(conn)

        await asyncio.gather(*(write_all(writer) for writer in writers))
    finally:
        await pool.close()

    ledgers = await asyncio.wait_for(asyncio.gather(*readers), READ_TIMEOUT_S * 4)
    for index, ledger in enumerate(ledgers):
        account = accounts[index // SOCKETS_PER_USER]
        assert ledger.foreign_events == 0, f"socket {index} saw another user's event"
        assert ledger.seqs == await table_seqs(database_url, account.user_id)
        assert ledger.seqs == list(range(1, EVENTS_PER_USER + 1))
