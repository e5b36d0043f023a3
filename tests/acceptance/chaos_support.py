"""The chaos run's machinery (used by `test_chaos.py`): its sizes, a client that records everything it
receives, the processes (a private Postgres cluster, `bookmarks workers run`), the fault driver, and the
checks and report that turn what the sockets received into evidence.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import websockets
from websockets.asyncio.client import ClientConnection

from testkit.fake_youtube import FakeYouTube
from testkit.harness import READ_TIMEOUT_S, ROOT, Ledger, LiveClient, ServerProcess
from tests.acceptance.cluster import restart_cluster

BOOKMARKS: Final = Path(sys.executable).with_name("bookmarks")
TERMINAL: Final = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})
PING: Final = json.dumps({"type": "ping"})
HUB_PIDS: Final = "SELECT pid FROM pg_stat_activity WHERE application_name = 'bookmarks-hub' AND datname = current_database()"
DB_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, "the database system is starting up"
    asyncpg.InterfaceError,
)
"""What a test-side query may meet while Postgres restarts: retried, never a test failure by itself."""
CONNECT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,
    websockets.InvalidStatus,
    websockets.InvalidHandshake,
    websockets.ConnectionClosed,  # the server went away between the handshake and our hello
)


# ---- sizes ----


@dataclass(frozen=True)
class ChaosScale:
    """One size of the run. Faults land at seeded random moments within `fault_window_s` after every job
    has started; the fake YouTube answers each 50-id request after `latency_ms` (slower near a job's end,
    see HOLDS) until the last fault, then after `drain_latency_ms` so the jobs finish."""

    name: str
    users: int
    sockets_per_user: int
    videos_per_user: int
    unavailable_per_user: int
    """Private and deleted ids among each user's videos: the jobs end `completed_with_errors`."""
    reconnects: int
    listener_kills: int
    web_restarts: int
    postgres_restarts: int
    worker_kills: int
    fault_window_s: float
    latency_ms: float
    drain_latency_ms: float
    deadline_s: float
    """The whole run, setup to verdict; every wait inside has its own, shorter bound as well."""

    @property
    def requests_per_job(self) -> int:
        return -(-self.videos_per_user // 50)

    def fault_counts(self) -> dict[str, int]:
        return {
            RECONNECT: self.reconnects,
            LISTENER_KILL: self.listener_kills,
            WEB_RESTART: self.web_restarts,
            POSTGRES_RESTART: self.postgres_restarts,
            WORKER_KILL: self.worker_kills,
        }


RECONNECT: Final = "client reconnect"
LISTENER_KILL: Final = "listener kill"
WEB_RESTART: Final = "web restart"
POSTGRES_RESTART: Final = "postgres restart"
WORKER_KILL: Final = "worker SIGKILL"

SCALES: Final = {
    "ci": ChaosScale(
        name="ci", users=3, sockets_per_user=3, videos_per_user=2000, unavailable_per_user=20,
        reconnects=40, listener_kills=5, web_restarts=2, postgres_restarts=1, worker_kills=1,
        fault_window_s=40.0, latency_ms=1000.0, drain_latency_ms=50.0, deadline_s=420.0,
    ),
    "full": ChaosScale(
        name="full", users=3, sockets_per_user=3, videos_per_user=5000, unavailable_per_user=50,
        reconnects=100, listener_kills=10, web_restarts=3, postgres_restarts=1, worker_kills=1,
        fault_window_s=75.0, latency_ms=700.0, drain_latency_ms=50.0, deadline_s=900.0,
    ),
}  # fmt: skip


def chaos_scale() -> ChaosScale:
    name = os.environ.get("CHAOS_SCALE", "ci")
    if name not in SCALES:
        raise ValueError(f"CHAOS_SCALE must be one of {sorted(SCALES)}, got {name!r}")
    return SCALES[name]


def chaos_seed() -> int:
    """CHAOS_SEED replays a run's fault plan; by default every run draws a new one (and prints it)."""
    raw = os.environ.get("CHAOS_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


def chaos_log_dir(default: Path, seed: int) -> Path:
    """CHAOS_LOG_DIR keeps a run's logs (web, workers, Postgres, the fault timeline) past pytest's rotation
    of its temporary directories; by default they stay in the test's `tmp_path`."""
    base = os.environ.get("CHAOS_LOG_DIR")
    if not base:
        return default
    path = Path(base) / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def listed_prefix(user: int) -> str:
    return f"vid{user}"


def user_video_ids(user: int, count: int, unavailable: int, rng: random.Random) -> list[str]:
    """`count` ids of the fake's catalog unique to `user`; `unavailable` of them private or deleted
    (the listed ones start with `listed_prefix(user)`)."""
    kinds = ["prv", "del"] * (unavailable // 2) + ["prv"] * (unavailable % 2)
    kinds += ["vid"] * (count - len(kinds))
    rng.shuffle(kinds)
    return [f"{kind}{user}{number:07d}" for number, kind in enumerate(kinds)]


# ---- the database, reached from the test (never sharing the app's connections) ----


async def fetch(dsn: str, sql: str, *args: object, retry_for_s: float = 60.0) -> list[asyncpg.Record]:
    """One query on a fresh connection, retried while the database is unreachable (a restart)."""
    deadline = time.monotonic() + retry_for_s
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                return await conn.fetch(sql, *args, timeout=30)
            finally:
                await close_connection(conn)
        except DB_ERRORS:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def close_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except DB_ERRORS:
        conn.terminate()


# ---- the fake YouTube, telling when its answers leave ----


class TimedYouTube(FakeYouTube):
    """The fake YouTube, noting when each answer will leave: the worker commits a batch (and its event)
    right after its answer arrives, so a fault can be aimed at that commit."""

    def __init__(self, *, latency_ms: float) -> None:
        super().__init__(latency_ms=latency_ms)
        self._answers: deque[float] = deque(maxlen=1000)
        self._answers_lock = threading.Lock()

    def handle_video_request(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Any:
        with self._answers_lock:
            self._answers.append(time.monotonic() + self.latency_ms / 1000)
        return super().handle_video_request(path, query, headers)

    def served(self, prefix: str) -> int:
        """Distinct ids starting with `prefix` answered so far (a batch fetched twice counts once)."""
        return sum(1 for video_id in self.requests_per_id if video_id.startswith(prefix))

    def next_answer(self, *, lead_s: float) -> float | None:
        """The monotonic time of the first answer due at least `lead_s` from now, if one is in flight."""
        earliest = time.monotonic() + lead_s
        with self._answers_lock:
            return min((at for at in self._answers if at >= earliest), default=None)


# ---- the client ----


@dataclass
class ChaosClient(LiveClient):
    """A LiveClient that never stops at the first surprise: it records every frame (duplicates, frames
    out of order) for the final verdict, keeps quiet sockets alive with pings (a job stalls ~20 s after
    its worker dies), and runs until it has reached `target`, the user's last seq (set at the end)."""

    name: str = ""
    snapshot_frames: list[dict[str, Any]] = field(default_factory=list)
    event_connections: list[int] = field(default_factory=list)
    """For each entry of `ledger.events`: which connection (1-based) delivered it."""
    anomalies: list[str] = field(default_factory=list)
    target: int | None = None
    established: bool = False
    """Between this connection's `ready` and its end: a drop now is a reconnect mid-stream."""
    drops: int = 0
    failed_connects: int = 0
    replayed: int = 0
    """Events received before `ready` on a reconnect: the server's replay from the table."""
    ready_on_connection: bool = False
    ping_every_s: float = 2.0
    last_frame_at: float = 0.0

    def done(self) -> bool:
        last = self.ledger.last_seq
        return self.target is not None and last is not None and last >= self.target

    async def connect(self) -> ClientConnection:
        ws = await websockets.connect(self.url, open_timeout=READ_TIMEOUT_S, max_queue=None)
        try:
            await ws.send(json.dumps({"type": "hello", "token": self.token, "after": self.ledger.last_seq}))
        except websockets.ConnectionClosed:
            await ws.close()
            raise
        self.ledger.connects += 1
        self.ready_on_connection = False
        self.last_frame_at = time.monotonic()
        return ws

    async def run(self, *, deadline_s: float = 120.0) -> Ledger:
        async with asyncio.timeout(deadline_s):
            delay = 0.05
            while True:
                try:
                    ws = await self.connect()
                except CONNECT_ERRORS:
                    self.failed_connects += 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self.ws = ws
                readies = len(self.ledger.resumed)
                try:
                    if await self.session(ws):
                        return self.ledger
                finally:
                    self.established, self.ws = False, None
                    await ws.close()
                if len(self.ledger.resumed) > readies:
                    delay = 0.05
                else:  # refused before `ready` (e.g. 1011 while Postgres restarts): back off
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)

    async def session(self, ws: ClientConnection) -> bool:
        try:
            while True:
                try:
                    text = await asyncio.wait_for(ws.recv(), self.ping_every_s)
                except TimeoutError:
                    if self.done():
                        return True
                    silent_s = time.monotonic() - self.last_frame_at
                    if silent_s > READ_TIMEOUT_S:
                        raise TimeoutError(
                            f"{self.name}: no frame, not even a pong, for {silent_s:.0f} s "
                            f"(connection {self.ledger.connects}, last seq {self.ledger.last_seq})"
                        ) from None
                    await ws.send(PING)
                    continue
                self.last_frame_at = time.monotonic()
                if self.handle(json.loads(text)):
                    return True
        except websockets.ConnectionClosed as closed:
            self.ledger.close_codes.append(closed.rcvd.code if closed.rcvd else None)
            return False

    def handle(self, frame: dict[str, Any]) -> bool:
        kind, ledger = frame["type"], self.ledger
        if kind == "event":
            seq = frame["seq"]
            ledger.seqs.append(seq)
            ledger.stream.append(("event", seq))
            ledger.events.append(frame)
            self.event_connections.append(ledger.connects)
            self.replayed += 0 if self.ready_on_connection else 1
            self._advance(seq, "event")
        elif kind == "snapshot":
            ledger.snapshots += 1
            ledger.stream.append(("snapshot", frame["seq"]))
            self.snapshot_frames.append(frame)
            self._advance(frame["seq"], "snapshot")
        elif kind == "ready":
            ledger.resumed.append(frame["resumed"])
            self._advance(frame["seq"], "ready")
            self.ready_on_connection = self.established = True
        elif kind != "pong":
            self.anomalies.append(f"unknown frame on connection {ledger.connects}: {frame!r:.200}")
        return self.done()

    def _advance(self, seq: int, what: str) -> None:
        """Moves last_seq forward; a frame that would move it back is kept for the verdict, not obeyed."""
        last = self.ledger.last_seq
        if last is not None and seq < last:
            self.anomalies.append(f"{what} {seq} after {last} on connection {self.ledger.connects}")
            return
        self.ledger.last_seq = seq

    async def drop(self, *, abrupt: bool = False) -> bool:  # type: ignore[override]
        """Ends the established connection from this side (a close handshake, or a TCP reset when
        `abrupt`); `run` reconnects with `after`. False when there was no established connection."""
        ws = self.ws
        if ws is None or not self.established:
            return False
        self.drops += 1
        self.established = False
        if abrupt:
            ws.transport.abort()
        else:
            await ws.close()
        return True


# ---- processes ----


@dataclass
class WorkerFleet:
    """`bookmarks workers run` processes, one at a time; each writes its own log in `log_dir`."""

    env: Mapping[str, str]
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def current(self) -> subprocess.Popen[bytes]:
        return self.processes[-1]

    def start(self) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"worker-{len(self.processes) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(BOOKMARKS), "workers", "run"], cwd=ROOT, env=dict(self.env), stdout=log, stderr=log
            )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# ---- faults ----


@dataclass
class Fault:
    kind: str
    planned_s: float
    """Offset from the start of the fault window, drawn from the seeded RNG."""
    started_s: float = 0.0
    duration_s: float = 0.0
    wall_start: float = 0.0
    wall_end: float = 0.0
    aimed: bool = False
    """Fired at its offset from a commit (AIM_S), not just at its random moment."""
    detail: str = ""


AIM_S: Final = {
    RECONNECT: (-0.06, 0.03),
    LISTENER_KILL: (-0.08, 0.0),
    WEB_RESTART: (-0.05, 0.05),
    POSTGRES_RESTART: (-0.15, 0.0),  # pg_ctlcluster (a Perl script) takes a moment to signal the server
    WORKER_KILL: (-0.3, 0.03),  # mostly mid-request, sometimes mid-commit
}
"""Where a fault fires relative to the next answer of the fake YouTube (seconds): the worker's commit
follows the answer by a few milliseconds, so the fault's disruption overlaps a commit and its NOTIFY."""
AIM_WAIT_S: Final = 1.5
"""No request in flight (a worker-kill stall): how long a fault waits for one before firing unaimed.
With requests in flight it waits up to one latency (at most AIM_WAIT_MAX_S) for the next answer."""
AIM_WAIT_MAX_S: Final = 3.5
HOLDS: Final = ((10, 3000.0), (3, 8000.0))
"""(requests left, latency ms): while faults remain, a job this close to its end is slowed down, so
every fault lands mid-job however long the faults take. 8 s stays under the worker's 15 s HTTP timeout."""


def plan_faults(rng: random.Random, counts: Mapping[str, int], window_s: float) -> list[Fault]:
    """Every fault at a uniformly random moment of the window, in time order."""
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)
    moments = sorted(rng.uniform(0.0, window_s) for _ in kinds)
    return [Fault(kind, moment) for kind, moment in zip(kinds, moments, strict=True)]


@dataclass
class ChaosDriver:
    """Injects planned faults one after another, each at its moment or as soon as the previous ends."""

    rng: random.Random
    dsn: str
    cluster: str
    server: ServerProcess
    workers: WorkerFleet
    clients: Sequence[ChaosClient]
    youtube: TimedYouTube
    prefixes: Sequence[str]
    """Each user's listed ids start with one of these (see `user_video_ids`)."""
    listed_per_user: int
    log_path: Path
    holds: list[str] = field(default_factory=list)

    async def run(self, faults: list[Fault]) -> None:
        started = time.monotonic()
        with self.log_path.open("a") as log:
            for fault in faults:
                await asyncio.sleep(max(0.0, started + fault.planned_s - time.monotonic()))
                self.hold_if_near_the_end(started)
                fault.aimed = await self.aim(fault.kind)
                fault.started_s = time.monotonic() - started
                fault.wall_start = time.time()
                fault.detail = await self.inject(fault.kind)
                fault.wall_end = time.time()
                fault.duration_s = fault.wall_end - fault.wall_start
                log.write(
                    f"+{fault.started_s:6.2f}s {fault.kind:<17} {fault.duration_s:5.2f}s "
                    f"{'aimed' if fault.aimed else 'unaimed'}  {fault.detail}\n"
                )
                log.flush()

    async def aim(self, kind: str) -> bool:
        """Waits until the fault's offset from the next answer of the fake; False if none came."""
        low, high = AIM_S[kind]
        offset = self.rng.uniform(low, high)
        in_flight = self.youtube.next_answer(lead_s=0.0) is not None
        budget_s = min(self.youtube.latency_ms / 1000 + 0.2, AIM_WAIT_MAX_S) if in_flight else AIM_WAIT_S
        deadline = time.monotonic() + max(budget_s, AIM_WAIT_S)
        while True:
            answer = self.youtube.next_answer(lead_s=max(0.0, -offset) + 0.005)
            if answer is not None and answer + offset <= deadline:
                await asyncio.sleep(max(0.0, answer + offset - time.monotonic()))
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)

    def hold_if_near_the_end(self, started: float) -> None:
        """Applies HOLDS to the job closest to its end (counted from what the fake has answered)."""
        left = min(-(-(self.listed_per_user - self.youtube.served(prefix)) // 50) for prefix in self.prefixes)
        for requests_left, latency_ms in HOLDS:
            if left <= requests_left and self.youtube.latency_ms < latency_ms:
                self.youtube.latency_ms = latency_ms
                self.holds.append(
                    f"+{time.monotonic() - started:.1f}s: a job {left} requests from its end, "
                    f"the fake slowed to {latency_ms:g} ms"
                )

    async def inject(self, kind: str) -> str:
        if kind == RECONNECT:
            return await self.reconnect_a_client()
        if kind == LISTENER_KILL:
            return await self.kill_listener()
        if kind == WEB_RESTART:
            return await self.restart_web()
        if kind == POSTGRES_RESTART:
            return await self.restart_postgres()
        if kind == WORKER_KILL:
            return await self.kill_worker()
        raise ValueError(kind)

    async def reconnect_a_client(self) -> str:
        """A random socket (the next connected one, if that one is between connections) drops."""
        first = self.rng.randrange(len(self.clients))
        abrupt = self.rng.random() < 0.5
        async with asyncio.timeout(READ_TIMEOUT_S):
            while True:
                for offset in range(len(self.clients)):
                    client = self.clients[(first + offset) % len(self.clients)]
                    if await client.drop(abrupt=abrupt):
                        return f"{client.name} {'TCP reset' if abrupt else 'close'}"
                await asyncio.sleep(0.05)

    async def kill_listener(self) -> str:
        """pg_terminate_backend of the web process's LISTEN connection (waiting for it to exist)."""
        pids: list[int] = []
        async with asyncio.timeout(30):
            while len(pids) != 1:
                pids = [row["pid"] for row in await fetch(self.dsn, HUB_PIDS)]
                if len(pids) != 1:
                    await asyncio.sleep(0.05)
        rows = await fetch(self.dsn, "SELECT pg_terminate_backend($1) AS ok", pids[0])
        return f"backend {pids[0]} terminated={rows[0]['ok']}"

    async def restart_web(self) -> str:
        """SIGTERM (sockets get 1012), then a new process on the same port, until healthy."""
        assert self.server.process is not None
        old_pid = self.server.process.pid
        exit_code = await self.server.stop(signal.SIGTERM)
        stopped = time.monotonic()
        await self.server.start()
        assert self.server.process is not None
        return (
            f"pid {old_pid} exited {exit_code}; pid {self.server.process.pid} healthy "
            f"{time.monotonic() - stopped:.1f}s later"
        )

    async def restart_postgres(self) -> str:
        result = await asyncio.to_thread(restart_cluster, self.cluster)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(result.args)} failed: {result.stderr.decode(errors='replace')}")
        return "pg_ctlcluster restart"

    async def kill_worker(self) -> str:
        """SIGKILL mid-job, and a new worker at once (SAQ retries the job once its heartbeat lapses)."""
        dead = self.workers.current
        dead.kill()
        await asyncio.to_thread(dead.wait, 10)
        fresh = self.workers.start()
        return f"pid {dead.pid} killed; pid {fresh.pid} started"


# ---- the verdict ----


@dataclass
class UserTruth:
    """What the database says about one user at the end: the source every socket is held to."""

    index: int
    user_id: uuid.UUID
    events: dict[int, dict[str, Any]]
    """The user's `progress_events` by seq (the event JSON, as the trigger wrote it)."""
    jobs: dict[str, dict[str, Any]]
    """The user's `jobs` rows by job id (as text), with `videos`: counts of that job's videos by status."""

    @property
    def seqs(self) -> list[int]:
        return sorted(self.events)

    @property
    def head(self) -> int:
        return max(self.events, default=0)

    def job_seq_at(self, job_id: str, seq: int) -> int:
        """The seq of the job's last event at or before `seq` (0: none), what a snapshot at `seq` says."""
        return max((s for s, e in self.events.items() if e["job_id"] == job_id and s <= seq), default=0)


async def read_truth(dsn: str, index: int, user_id: uuid.UUID) -> UserTruth:
    rows = await fetch(
        dsn, "SELECT seq, data::text AS data FROM progress_events WHERE user_id = $1 ORDER BY seq", user_id
    )
    events = {row["seq"]: json.loads(row["data"]) for row in rows}
    jobs: dict[str, dict[str, Any]] = {}
    for row in await fetch(dsn, "SELECT * FROM jobs WHERE user_id = $1", user_id):
        job = dict(row)
        counts = await fetch(
            dsn, "SELECT status, count(*) AS n FROM videos WHERE job_id = $1 GROUP BY status", row["id"]
        )
        job["videos"] = {count["status"]: count["n"] for count in counts}
        jobs[str(row["id"])] = job
    return UserTruth(index, user_id, events, jobs)


@dataclass
class SocketVerdict:
    """One logical client (across all its reconnects) held against its user's table."""

    name: str
    user: int
    seqs: list[int]
    """Every event seq received, across reconnects, in arrival order."""
    events_checked: int
    duplicated: list[int]
    lost: list[int]
    """Table seqs this socket never received and no snapshot replaced."""
    replaced: list[int]
    """Table seqs a mid-stream snapshot legitimately replaced (the server said so with its S)."""
    phantom: list[int]
    """Received seqs the table does not have."""
    gaps: list[tuple[int, int]]
    payload_mismatches: list[int]
    foreign: list[int]
    snapshot_errors: list[str]
    anomalies: list[str]
    snapshots: int
    connects: int
    resumed: int
    replayed: int
    drops: int
    close_codes: Counter[int | None]
    last_seq: int | None
    head: int

    @property
    def exact(self) -> bool:
        """No mid-stream snapshot was received, so the events must be the table exactly."""
        return self.snapshots == 1 and not self.replaced


def judge_socket(client: ChaosClient, truth: UserTruth) -> SocketVerdict:
    ledger = client.ledger
    counts = Counter(ledger.seqs)
    replaced: set[int] = set()
    position = 0
    for kind, seq in ledger.stream:
        if kind == "snapshot" and seq > position:
            replaced.update(s for s in range(position + 1, seq + 1) if s not in counts)
        position = max(position, seq)
    mismatches = []
    foreign = []
    for frame in ledger.events:
        data = {key: value for key, value in frame.items() if key != "type"}
        if data["job_id"] not in truth.jobs:
            foreign.append(frame["seq"])
        elif truth.events.get(frame["seq"]) != data:
            mismatches.append(frame["seq"])
    return SocketVerdict(
        name=client.name,
        user=truth.index,
        seqs=list(ledger.seqs),
        events_checked=len(ledger.seqs),
        duplicated=sorted(seq for seq, n in counts.items() if n > 1),
        lost=[seq for seq in truth.seqs if seq not in counts and seq not in replaced],
        replaced=sorted(replaced),
        phantom=sorted(set(counts) - set(truth.events)),
        gaps=ledger.gaps(start=0),
        payload_mismatches=mismatches,
        foreign=foreign,
        snapshot_errors=judge_snapshots(client.snapshot_frames, truth),
        anomalies=list(client.anomalies),
        snapshots=ledger.snapshots,
        connects=ledger.connects,
        resumed=sum(ledger.resumed),
        replayed=client.replayed,
        drops=client.drops,
        close_codes=Counter(ledger.close_codes),
        last_seq=ledger.last_seq,
        head=truth.head,
    )


def judge_snapshots(frames: list[dict[str, Any]], truth: UserTruth) -> list[str]:
    """A snapshot with S must tell each job's state as of S: the job's last event at or before S."""
    errors = []
    for frame in frames:
        s = frame["seq"]
        if s > truth.head:
            errors.append(f"snapshot S={s} beyond the stream head {truth.head}")
        for job in frame["jobs"]:
            if job["job_id"] not in truth.jobs:
                errors.append(f"snapshot S={s} lists job {job['job_id']} of another user")
            elif job["seq"] != truth.job_seq_at(job["job_id"], s):
                errors.append(
                    f"snapshot S={s}: job {job['job_id']} at seq {job['seq']}, "
                    f"the table says {truth.job_seq_at(job['job_id'], s)}"
                )
    return errors


@dataclass(frozen=True)
class HubLog:
    """What the web processes logged about listener losses and recoveries."""

    losses: int
    recoveries: int
    caught_up: int
    resynced: int


_RECOVERED = re.compile(
    r"progress hub recovered after .*?(\d+) events caught up from the table, (\d+) subscribers resynced"
)


def read_hub_log(path: Path) -> HubLog:
    text = path.read_text(errors="replace") if path.exists() else ""
    recovered = _RECOVERED.findall(text)
    return HubLog(
        losses=text.count("progress hub lost its LISTEN connection"),
        recoveries=len(recovered),
        caught_up=sum(int(caught) for caught, _ in recovered),
        resynced=sum(int(resynced) for _, resynced in recovered),
    )


def event_time(event: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def codes_text(codes: Counter[int | None]) -> str:
    return " ".join(f"{'reset' if code is None else code}x{n}" for code, n in sorted(codes.items(), key=str))


def short(values: Sequence[object], limit: int = 12) -> str:
    """A list for a table cell or an assertion message, cut after `limit` items."""
    text = ", ".join(str(value) for value in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}] ({len(values)})"


# ---- the report ----


@dataclass
class ChaosReport:
    scale: ChaosScale
    seed: int
    faults: list[Fault]
    landed_mid_job: Counter[str]
    truths: list[UserTruth]
    verdicts: list[SocketVerdict]
    hub: HubLog
    worker_recovery: list[str]
    holds: list[str]
    wall_s: float

    def render(self) -> str:
        scale = self.scale
        injected = Counter(fault.kind for fault in self.faults)
        lines = [
            f"chaos run: scale {scale.name}, seed {self.seed}; {scale.users} users x {scale.sockets_per_user} "
            f"sockets, one {scale.videos_per_user}-video job per user; fake YouTube {scale.latency_ms:g} ms "
            f"per 50-id request (held slower near a job's end) until the last fault, then {scale.drain_latency_ms:g} ms",
            "",
            f"{'fault':<18}{'planned':>8}{'injected':>10}{'aimed at a commit':>19}{'landed mid-job':>16}",
        ]
        aimed = Counter(fault.kind for fault in self.faults if fault.aimed)
        for kind, planned in scale.fault_counts().items():
            lines.append(
                f"{kind:<18}{planned:>8}{injected[kind]:>10}{aimed[kind]:>19}{self.landed_mid_job[kind]:>16}"
            )
        lines += ["", "timeline (reconnects omitted):"]
        lines += [
            f"  +{f.started_s:6.2f}s  {f.kind:<17} {f.duration_s:5.2f}s  {'aimed  ' if f.aimed else 'unaimed'}  {f.detail}"
            for f in self.faults
            if f.kind != RECONNECT
        ]
        lines += [f"  {line}" for line in self.worker_recovery]
        lines += [f"  hold {line}" for line in self.holds]
        lines += [
            f"  hub (web logs): {self.hub.losses} listener losses, {self.hub.recoveries} recoveries, "
            f"{self.hub.caught_up} events caught up from the table, {self.hub.resynced} sockets resynced "
            "by snapshot",
            "",
            f"{'user':<6}{'job status':<23}{'total':>7}{'failed':>8}{'resumes':>9}{'events':>8}",
        ]
        for truth in self.truths:
            for job in truth.jobs.values():
                resumes = sum(
                    1
                    for e in truth.events.values()
                    if e["job_id"] == str(job["id"]) and e["message"] == "Resuming"
                )
                lines.append(
                    f"u{truth.index + 1:<5}{job['status']:<23}{job['total']:>7}{job['failed']:>8}"
                    f"{resumes:>9}{len(truth.events):>8}"
                )
        lines += [
            "",
            f"{'socket':<8}{'events':>7}{'lost':>6}{'dup':>5}{'snapshots':>11}{'replaced':>10}{'connects':>10}"
            f"{'resumed':>9}{'replayed':>10}{'drops':>7}  close codes",
        ]
        for v in self.verdicts:
            lines.append(
                f"{v.name:<8}{v.events_checked:>7}{len(v.lost):>6}{len(v.duplicated):>5}{v.snapshots:>11}"
                f"{len(v.replaced):>10}{v.connects:>10}{v.resumed:>9}{v.replayed:>10}{v.drops:>7}  "
                f"{codes_text(v.close_codes)}"
            )
        checked = sum(v.events_checked for v in self.verdicts)
        lost = sum(len(v.lost) for v in self.verdicts)
        duplicated = sum(len(v.duplicated) for v in self.verdicts)
        mid_stream = sum(v.snapshots - 1 for v in self.verdicts)
        reconnects = sum(v.connects - 1 for v in self.verdicts)
        lines += [
            "",
            f"total: {sum(len(t.events) for t in self.truths)} events written, {checked} checked on "
            f"{len(self.verdicts)} sockets; lost {lost}, duplicated {duplicated}; snapshots "
            f"{sum(v.snapshots for v in self.verdicts)} ({mid_stream} mid-stream); reconnects {reconnects}; "
            f"wall time {self.wall_s:.0f} s",
        ]
        return "\n".join(lines)
