"""Real processes and real sockets: the app under uvicorn, and a `websockets` client that keeps a ledger.

Used by the acceptance tests (and the benchmarks): nothing here imports the app's runtime objects, so a
server restart in a test is a real restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from app.serving import APP, uvicorn_arguments
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
if TYPE_CHECKING:
    AnyConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
READ_TIMEOUT_S = 15.0
"""Every socket read in the acceptance tests is bounded by this."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def app_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOUTUBE_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": database_url, "RUN_WORKERS_IN_WEB": "false", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


@dataclass
class ServerProcess:
    """`uvicorn --factory app.asgi:create_app_from_env` in a subprocess, restartable on the same port, with
    the options `bookmarks run` gives uvicorn (app/serving.py)."""

    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    log_level: str = "warning"
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws/progress"

    async def start(self) -> None:
        if self.log_path is None:
            self.log_path = Path(os.devnull)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", APP,
                 *uvicorn_arguments(Settings.from_env(self.env)),
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", self.log_level],
                cwd=ROOT, env=dict(self.env), stdout=log, stderr=log,
            )  # fmt: skip
        await self.wait_healthy()

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.base_url + "/api/health")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise TimeoutError(f"server on port {self.port} not healthy within {timeout_s} s")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        return self.process.returncode

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@dataclass
class Ledger:
    """What one logical client (across its reconnects) received."""

    seqs: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    snapshots: int = 0
    connects: int = 0
    resumed: list[bool] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    last_seq: int | None = None
    foreign_events: int = 0
    stream: list[tuple[str, int]] = field(default_factory=list)
    """("event", seq) and ("snapshot", S) in arrival order."""

    def gaps(self, start: int = 0) -> list[tuple[int, int]]:
        """(expected, got) for every silent gap: events must run S+1, S+2... after a snapshot with S."""
        expected, found = start + 1, []
        for kind, seq in self.stream:
            if kind == "snapshot":
                expected = seq + 1
                continue
            if seq != expected:
                found.append((expected, seq))
            expected = seq + 1
        return found


@dataclass
class LiveClient:
    """A well-behaved client: hello with `after`, dedupe by seq, reconnect on close (docs/design.md, "The progress socket")."""

    url: str
    token: str
    job_ids: set[str] | None = None
    ledger: Ledger = field(default_factory=Ledger)
    stop_when: Any = None
    """Called after each event with the ledger; True ends `run`."""
    ws: ClientConnection | None = None
    compress: bool = True
    """Offer permessage-deflate, as browsers do."""

    async def connect(self) -> ClientConnection:
        ws = await websockets.connect(
            self.url,
            open_timeout=READ_TIMEOUT_S,
            max_queue=None,
            compression="deflate" if self.compress else None,
        )
        await ws.send(json.dumps({"type": "hello", "token": self.token, "after": self.ledger.last_seq}))
        self.ledger.connects += 1
        return ws

    async def session(self, ws: ClientConnection) -> bool:
        """Read until the socket closes (False) or `stop_when` says done (True)."""
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), READ_TIMEOUT_S))
                if self.handle(frame):
                    return True
        except websockets.ConnectionClosed as closed:
            self.ledger.close_codes.append(closed.rcvd.code if closed.rcvd else None)
            return False

    def handle(self, frame: dict[str, Any]) -> bool:
        kind = frame["type"]
        if kind == "ready":
            self.ledger.resumed.append(frame["resumed"])
            self.ledger.last_seq = frame["seq"]
        elif kind == "snapshot":
            self.ledger.snapshots += 1
            self.ledger.last_seq = frame["seq"]
            self.ledger.stream.append(("snapshot", frame["seq"]))
        elif kind == "event":
            seq = frame["seq"]
            assert self.ledger.last_seq is None or seq > self.ledger.last_seq, (seq, self.ledger.last_seq)
            self.ledger.seqs.append(seq)
            self.ledger.stream.append(("event", seq))
            self.ledger.events.append(frame)
            self.ledger.last_seq = seq
            if self.job_ids is not None and frame["job_id"] not in self.job_ids:
                self.ledger.foreign_events += 1
            if self.stop_when is not None and self.stop_when(self.ledger):
                return True
        return False

    async def run(self, *, deadline_s: float = 120.0) -> Ledger:
        """Stay connected (reconnecting as needed) until `stop_when` is satisfied."""
        async with asyncio.timeout(deadline_s):
            delay = 0.05
            while True:
                try:
                    ws = await self.connect()
                except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                delay = 0.05
                self.ws = ws
                try:
                    if await self.session(ws):
                        return self.ledger
                finally:
                    self.ws = None
                    await ws.close()

    async def drop(self) -> None:
        """Close the current connection from the client side; `run` reconnects with `after`."""
        if self.ws is not None:
            await self.ws.close()


UPDATE_JOB = "UPDATE jobs SET processed = $2, status = $3, last_seq = $4 WHERE id = $1"
"""The job row after its event: writers keep `last_seq` (the trigger numbers events, it no longer touches jobs)."""


@dataclass
class EventWriter:
    """Writes progress events the way a worker does (one event and the job row per transaction)."""

    dsn: str
    user_id: uuid.UUID
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    total: int = 1000
    processed: int = 0
    message_pad: int = 0
    """Extra characters in each event's message, to make events heavier."""

    async def create_job(self, conn: AnyConnection) -> None:
        await conn.execute(
            "INSERT INTO jobs (id, user_id, kind, status, total, processed, failed, cancel_requested, created_at)"
            " VALUES ($1, $2, 'import', 'running', $3, 0, 0, false, now())",
            self.job_id, self.user_id, self.total,
        )  # fmt: skip

    def _advance(self, step: int) -> tuple[str, str]:
        """Moves `processed` on by `step`; returns the job's status and the next event's JSON."""
        self.processed = min(self.total, self.processed + step)
        status = "completed" if self.processed == self.total else "running"
        data = {
            "list_id": None, "status": status, "progress": round(100 * self.processed / self.total, 1),
            "processed": self.processed, "failed": 0, "total": self.total, "rate": 10.0, "eta_s": 1,
            "message": f"Fetched {self.processed} of {self.total} videos" + "." * self.message_pad,
            "error": None,
        }  # fmt: skip
        return status, json.dumps(data)

    async def write(self, conn: AnyConnection, step: int = 1) -> int:
        status, data = self._advance(step)
        async with conn.transaction():
            seq: int = await conn.fetchval(
                "INSERT INTO progress_events (user_id, job_id, data) VALUES ($1, $2, $3::jsonb) RETURNING seq",
                self.user_id, self.job_id, data,
            )  # fmt: skip
            await conn.execute(UPDATE_JOB, self.job_id, self.processed, status, seq)
        return seq

    async def write_many(self, conn: AnyConnection, count: int) -> int:
        """`count` events in one transaction and one INSERT (the triggers still give every row its seq and
        its own NOTIFY, sent at commit in seq order), for bursts that a commit per event would make slow.
        Returns the last seq."""
        advanced = [self._advance(1) for _ in range(count)]
        async with conn.transaction():
            seq: int = await conn.fetchval(
                "WITH inserted AS (INSERT INTO progress_events (user_id, job_id, data)"
                " SELECT $1, $2, event::jsonb FROM unnest($3::text[]) WITH ORDINALITY AS t(event, n) ORDER BY n"
                " RETURNING seq) SELECT max(seq) FROM inserted",
                self.user_id, self.job_id, [data for _status, data in advanced],
            )  # fmt: skip
            await conn.execute(UPDATE_JOB, self.job_id, self.processed, advanced[-1][0], seq)
        return seq


async def table_seqs(dsn: str, user_id: uuid.UUID) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT seq FROM progress_events WHERE user_id = $1 ORDER BY seq", user_id)
    finally:
        await conn.close()
    return [row["seq"] for row in rows]


async def history_seqs(base_url: str, token: str) -> list[int]:
    seqs: list[int] = []
    after = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        while True:
            page = (
                await client.get(
                    "/api/progress", params={"after_seq": after, "limit": 1000},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()  # fmt: skip
            seqs.extend(event["seq"] for event in page["events"])
            if page["next_after_seq"] is None:
                return seqs
            after = page["next_after_seq"]
