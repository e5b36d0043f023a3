"""What every benchmark shares: the databases, the server processes, accounts, statistics and the report.

Every figure a benchmark prints stands beside a baseline measured in the same run (the machine is two
shared cores, so absolute numbers drift from run to run; ratios mostly do not).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app import database
from app.serving import uvicorn_arguments
from app.settings import Settings, replace_database
from bench.rlimit import raise_nofile
from testkit.accounts import Account, create_account
from testkit.harness import ROOT, ServerProcess, app_env

__all__ = ["Account", "raise_nofile"]  # re-exported: the benchmark modules take them from here

ADMIN_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BOOKMARKS = Path(sys.executable).with_name("bookmarks")
LOG_DIR = ROOT / "bench" / "results" / "logs"


# ---- statistics ----


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `q` in 0..100."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ns_to_ms(values: Sequence[int]) -> list[float]:
    return [value / 1e6 for value in values]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.inf


def fmt(value: float, digits: int = 2) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float) -> str:
    return "-" if math.isnan(value) or math.isinf(value) else f"{value:.2f}x"


# ---- the report ----


@dataclass
class Target:
    """One target of the brief: `measured` must be <= `limit` (or >= when `at_least`)."""

    name: str
    measured: float
    limit: float
    unit: str = "x"
    at_least: bool = False

    @property
    def met(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "MET" if self.met else "MISSED"
        target = f"target {sign} {fmt(self.limit)} {self.unit}"
        return f"{verdict:<6} {self.name}: {fmt(self.measured)} {self.unit} ({target})"


@dataclass
class Result:
    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def render(self) -> str:
        lines = [
            f"## {self.key} {self.title}  ({self.seconds:.0f} s)",
            "",
            *render_table(self.columns, self.rows),
        ]
        if self.targets:
            lines += ["", *(target.line() for target in self.targets)]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 1),
            "columns": self.columns,
            "rows": self.rows,
            "targets": [{**asdict(target), "met": target.met} for target in self.targets],
            "notes": self.notes,
            "data": self.data,
        }


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(cell) for cell in cells)
        return (
            "| "
            + " | ".join(
                [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
            )
            + " |"
        )

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return [line(columns), rule, *(line(row) for row in rows)]


# ---- databases ----


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


PLAIN_TABLE_SQL = """
CREATE TABLE bench_plain (LIKE progress_events INCLUDING ALL);
ALTER TABLE bench_plain ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
"""
"""`progress_events` without its two triggers: same columns, defaults, identity, indexes and foreign key."""


class Databases:
    """One migrated template per run, cloned per benchmark (fast), every database dropped at the end."""

    def __init__(self) -> None:
        self.prefix = f"bench_{uuid.uuid4().hex[:8]}"
        self.template: str | None = None
        self.created: list[str] = []

    async def clone(self, label: str) -> str:
        if self.template is None:
            self.template = f"{self.prefix}_template"
            await admin(f'CREATE DATABASE "{self.template}"')
            self.created.append(self.template)
            dsn = replace_database(ADMIN_DSN, self.template)
            await asyncio.to_thread(database.upgrade, Settings(database_url=dsn))
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(PLAIN_TABLE_SQL)
            finally:
                await conn.close()
        name = f"{self.prefix}_{label.lower()}"
        await admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return replace_database(ADMIN_DSN, name)

    async def drop_all(self) -> None:
        for name in reversed(self.created):
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


class Bench:
    """What a benchmark gets: the run's mode, fresh databases, and the app server it may share."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.databases = Databases()
        self._shared: tuple[str, Server] | None = None

    async def shared_server(self) -> tuple[str, Server]:
        """One app server (and its database) for the benchmarks that do not measure the server's own
        memory: P1, P2 and P4 use it in turn, so the run starts one server instead of three."""
        if self._shared is None:
            dsn = await self.databases.clone("shared")
            self._shared = dsn, await start_app_server(dsn, "shared-server")
        return self._shared

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared[1].stop()
            self._shared = None
        await self.databases.drop_all()


async def create_accounts(dsn: str, count: int, *, prefix: str = "bench") -> list[Account]:
    engine = create_async_engine(Settings(database_url=dsn).sqlalchemy_url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        return [await create_account(sessions, f"{prefix}{i}@example.com") for i in range(count)]
    finally:
        await engine.dispose()


async def create_jobs(dsn: str, user_ids: Sequence[uuid.UUID], *, total: int = 1_000_000) -> list[uuid.UUID]:
    """One running job row per user (progress events point at a job)."""
    job_ids = [uuid.uuid4() for _ in user_ids]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO jobs (id, user_id, kind, status, total, processed, failed, cancel_requested,"
            " created_at) VALUES ($1, $2, 'import', 'running', $3, 0, 0, false, now())",
            [(job_id, user_id, total) for job_id, user_id in zip(job_ids, user_ids, strict=True)],
        )
    finally:
        await conn.close()
    return job_ids


# ---- processes ----


def log_path(name: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{name}.log"


@dataclass
class Server(ServerProcess):
    """The harness's uvicorn subprocess, with RLIMIT_NOFILE raised in the child and any ASGI factory."""

    factory: str = "app.asgi:create_app_from_env"
    web_processes: int = 1
    """uvicorn's `--workers`: processes sharing the port, each with its own app (and hub)."""
    extra_args: tuple[str, ...] = ()

    async def start(self) -> None:
        if self.log_path is None:
            self.log_path = Path(os.devnull)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", self.factory,
                 *uvicorn_arguments(Settings.from_env(self.env)),
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                 "--backlog", "4096", "--workers", str(self.web_processes), *self.extra_args],
                cwd=ROOT, env=dict(self.env), stdout=log, stderr=log, preexec_fn=raise_nofile,
            )  # fmt: skip
        await self.wait_healthy(timeout_s=60)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


async def start_app_server(
    dsn: str, name: str, *, web_processes: int = 1, extra_args: tuple[str, ...] = (), **env: str
) -> Server:
    server = Server(
        env=app_env(dsn, **env),
        log_path=log_path(name),
        factory="bench.gc_probe:app_from_env",
        web_processes=web_processes,
        extra_args=extra_args,
    )
    await server.start()
    return server


async def start_bare_server(dsn: str, name: str, accounts: Sequence[Account]) -> Server:
    tokens = json.dumps({account.token: str(account.user_id) for account in accounts})
    server = Server(
        env=app_env(dsn, BARE_TOKENS=tokens),
        log_path=log_path(name),
        factory="bench.gc_probe:bare_from_env",
    )
    await server.start()
    return server


@dataclass
class Worker:
    """A `bookmarks workers run` process."""

    env: dict[str, str]
    name: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(log_path(self.name), "ab") as log:
            self.process = subprocess.Popen(
                [str(BOOKMARKS), "workers", "run"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def pause(self) -> None:
        """SIGSTOP: started and registered, but unable to take a job until `resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        deadline = time.monotonic() + 15
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


# ---- timing ----


def trace(message: str) -> None:
    """Progress on stderr with the time since start (`BENCH_TRACE=1`): where a run spends its minutes."""
    if os.environ.get("BENCH_TRACE"):
        print(f"[{time.perf_counter() - _STARTED:7.2f}] {message}", file=sys.stderr, flush=True)


_STARTED = time.perf_counter()


async def paced(rate_per_s: float, count: int, action: Callable[[int], Any]) -> float:
    """Calls `await action(i)` on a fixed schedule (no drift; late calls run at once); returns seconds."""
    interval_ns = int(1e9 / rate_per_s)
    start = time.perf_counter_ns()
    for i in range(count):
        delay = (start + i * interval_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        await action(i)
    return (time.perf_counter_ns() - start) / 1e9


async def wait_for(predicate: Callable[[], bool], timeout_s: float, *, step_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step_s)
    return True
