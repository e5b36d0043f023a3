"""P6 a stalled socket among 500: do the other 499 notice it, and does the server's memory stay bounded?

One app server (uvicorn subprocess, the real app) per run; 20 users, one running job each, 25 sockets per
user (500). The sockets are raw RFC 6455 clients in two `bench.swarm` processes, which stamp each receipt
with CLOCK_MONOTONIC (as in P3). Each run:

1. opens the 500 sockets; 499 are the measured ones (24 of user 0, 25 of each other user);
2. fill: user 0's writer commits `fill_events` events with big messages (~7 KB), 25 a transaction, as
   fast as one connection can. In a run B, the 500th socket is a `testkit.rawsocket.RawWebSocket`
   in this process that never reads after its hello: the fill is more than the kernel's buffers hold
   (about 2.8 MB here), so the server's writes to it block and its hub queue fills behind them (in full
   runs past its 1,000 items, to the overflow snapshot). In a run A, the 500th socket is one more
   reading swarm client. The fill is the same in both runs and not measured;
3. window: 20 writers (one per user, one connection each, phase-shifted) commit events with padded
   messages (~2.3 KB) at a steady total rate, stamping `perf_counter_ns()` right after COMMIT returns
   (P1's method); every receipt on a measured socket is one latency sample, commit → receipt. Each
   writer's first `warmup` events are not measured;
4. the server's RSS (psutil) after the sockets opened, after the fill, after the window, and its peak
   (sampled every 0.2 s from before the fill to the end of the window); the whole machine's CPU use and
   the server's CPU time during the window, to tell the other tenants' noise from the app's;
5. a run B: the server's kernel send queue to the stalled socket at the end of the window (proof that it
   was stalled), then the stalled socket reads again and its stream is checked for honesty (every
   event, or a snapshot with S followed by S+1 onwards; or a 1011/1013 close).

Runs go in pairs, A B, B A, A B ... (the order alternates so a drift hits both kinds alike) and every run
is printed; the target compares B's p99 with A's, each the median over the runs of its kind (the pooled
quantiles are printed too). The stalled socket stays stalled through the window: the session gives up on
a send blocked for 30 s (1013) and uvicorn's keepalive after 40 s (1011); fill plus window take well
under that (each run B prints how long).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import struct
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.common import (
    Account,
    Bench,
    Result,
    Server,
    Target,
    create_accounts,
    create_jobs,
    fmt,
    fmt_ratio,
    paced,
    ratio,
    start_app_server,
    summary,
    trace,
)
from bench.p3_sockets import Swarms, settled_rss
from testkit.harness import EventWriter, Ledger, LiveClient
from testkit.rawsocket import OP_CLOSE, RawWebSocket

USERS = 20
SOCKETS_PER_USER = 25
STALLED_USER = 0
QUANTILES = ("p50", "p95", "p99", "max")
FILL_BATCH = 25
"""Fill events a transaction."""
STALL_LIMIT_S = 30.0
"""The session closes a socket whose send has been blocked this long (1013): a window must end before."""


@dataclass(frozen=True)
class Sizes:
    rate_per_s: float
    """All 20 writers together, in the window."""
    events_per_user: int
    """Measured window events of each user."""
    warmup_per_user: int
    """Events each writer commits first in a window, not measured."""
    pad: int
    fill_events: int
    fill_pad: int
    pairs: int


QUICK = Sizes(
    rate_per_s=100, events_per_user=25, warmup_per_user=3, pad=2000, fill_events=600, fill_pad=7000, pairs=1
)
FULL = Sizes(
    rate_per_s=100, events_per_user=50, warmup_per_user=5, pad=2000, fill_events=1500, fill_pad=7000, pairs=4
)


@dataclass
class StalledReport:
    """What the stalled socket got once it read again."""

    send_queue_bytes: int | None = None
    """The server's kernel send queue to the stalled socket at the end of the window."""
    events: int = 0
    snapshots: int = 0
    last_seq: int | None = None
    head: int = 0
    close_code: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)
    error: str = ""

    @property
    def honest(self) -> bool:
        reached = self.last_seq == self.head or self.close_code in {1011, 1013}
        return reached and not self.gaps and not self.error

    def line(self) -> str:
        queue = "?" if self.send_queue_bytes is None else f"{self.send_queue_bytes / 2**20:.1f} MB"
        if self.close_code is not None:
            ending = f"then closed {self.close_code}"
        elif self.last_seq == self.head:
            ending = "reaching the head"
        else:
            ending = f"stopping at {self.last_seq}"
        if self.error:
            ending += f" ({self.error})"
        verdict = "honest" if self.honest else f"NOT honest (gaps {self.gaps[:3]})"
        return (
            f"server's kernel send queue to it {queue}; reading again it got {self.events} events and "
            f"{self.snapshots} snapshot(s), {ending} (head {self.head}): {verdict}"
        )


@dataclass
class Run:
    label: str
    stalled: bool
    latencies_ms: list[float]
    """Every receipt on the 499 measured sockets."""
    stalled_user_ms: list[float]
    """The receipts on the stalled user's 24 healthy sockets (a subset): the stalled socket's siblings,
    on its channel, sharing its notifications."""
    other_users_ms: list[float]
    """The rest of `latencies_ms`."""
    expected: int
    received: int
    snapshots: int
    """Snapshots after ready on the measured sockets (a healthy socket should get none)."""
    rate_per_s: float
    rss_open: int
    rss_filled: int
    rss_after: int
    rss_peak: int
    machine_busy: float
    """The whole machine's CPU use during the window, 0..1 of all cores."""
    server_cpu_s: float
    stalled_for_s: float = 0.0
    """From the fill's start to the end of the window (a run B)."""
    stalled_report: StalledReport | None = None

    @property
    def stats(self) -> dict[str, float]:
        return summary(self.latencies_ms)

    @property
    def siblings_p99_ratio(self) -> float:
        """p99 of the stalled user's healthy sockets / p99 of the other users' sockets, in this run."""
        return ratio(summary(self.stalled_user_ms)["p99"], summary(self.other_users_ms)["p99"])

    @property
    def cpu_us_per_delivery(self) -> float:
        """The server's CPU over the window per receipt on a measured socket (not a wall-clock figure: the
        other tenants of the machine hardly move it)."""
        return 1e6 * self.server_cpu_s / self.received if self.received else float("nan")

    @property
    def growth_mb(self) -> float:
        return (self.rss_after - self.rss_open) / 2**20

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "stalled": self.stalled,
            "latency_ms": self.stats,
            "stalled_user_latency_ms": summary(self.stalled_user_ms),
            "expected": self.expected,
            "received": self.received,
            "snapshots": self.snapshots,
            "rate_per_s": self.rate_per_s,
            "rss_open_mb": self.rss_open / 2**20,
            "rss_filled_mb": self.rss_filled / 2**20,
            "rss_after_mb": self.rss_after / 2**20,
            "rss_peak_mb": self.rss_peak / 2**20,
            "machine_busy": self.machine_busy,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_us_per_receipt": self.cpu_us_per_delivery,
            "stalled_for_s": self.stalled_for_s,
            "stalled_socket": None if self.stalled_report is None else asdict(self.stalled_report),
        }


class RssSampler:
    """The server's peak RSS, sampled every 0.2 s while entered."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.2)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, self.process.memory_info().rss)


def send_queue_bytes(local_port: int, remote_port: int) -> int | None:
    """The kernel's unsent bytes on the 127.0.0.1 TCP connection local_port → remote_port (/proc/net/tcp)."""
    local, remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[0], 16)
    return None


async def open_stalled(server: Server, token: str) -> tuple[RawWebSocket, int]:
    """A raw socket that reads its snapshot and `ready`, then nothing: returns it with its S."""
    raw = await asyncio.to_thread(RawWebSocket, "127.0.0.1", server.port, "/api/ws/progress")
    raw.send_text(json.dumps({"type": "hello", "token": token, "after": None}))

    def first_two() -> list[dict[str, Any]]:
        return [json.loads(raw.recv_message()[1]) for _ in range(2)]

    snapshot, ready = await asyncio.to_thread(first_two)
    assert (snapshot["type"], ready["type"]) == ("snapshot", "ready"), (snapshot, ready)
    return raw, ready["seq"]


def drain_stalled(raw: RawWebSocket, report: StalledReport, start: int) -> None:
    """Reads the stalled socket until it reaches `report.head` or is closed (blocking: run it in a
    thread; every read has the raw socket's 15 s timeout)."""
    ledger = Ledger(last_seq=start)
    reader = LiveClient("", "", ledger=ledger)  # only its frame handling (seq order, stream) is used
    try:
        while ledger.last_seq != report.head:
            opcode, payload = raw.recv_message()
            if opcode == OP_CLOSE:
                report.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                break
            reader.handle(json.loads(payload))
    except (OSError, ConnectionError, AssertionError) as exc:
        report.error = repr(exc)
    finally:
        raw.close()
    report.events = len(ledger.seqs)
    report.snapshots = ledger.snapshots
    report.last_seq = ledger.last_seq
    report.gaps = ledger.gaps(start=start)


class Workload:
    """The users, their jobs and their writers, shared by every run (seqs simply continue)."""

    def __init__(self, dsn: str, accounts: list[Account], job_ids: list[uuid.UUID], sizes: Sizes) -> None:
        self.dsn = dsn
        self.accounts = accounts
        self.sizes = sizes
        self.writers = [
            EventWriter(dsn, account.user_id, job_id=job_id, total=10**9, message_pad=sizes.pad)
            for account, job_id in zip(accounts, job_ids, strict=True)
        ]
        self.conns: list[asyncpg.Connection[asyncpg.Record]] = []

    async def connect(self) -> None:
        self.conns = [await asyncpg.connect(self.dsn) for _ in self.writers]

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()

    async def fill(self) -> int:
        """User 0's burst of big events, FILL_BATCH a transaction (one commit an event would take most of
        the 30 s a stalled socket lives); returns the last seq."""
        writer, conn = self.writers[STALLED_USER], self.conns[STALLED_USER]
        writer.message_pad = self.sizes.fill_pad
        try:
            seq = 0
            for first in range(0, self.sizes.fill_events, FILL_BATCH):
                seq = await writer.write_many(conn, min(FILL_BATCH, self.sizes.fill_events - first))
            return seq
        finally:
            writer.message_pad = self.sizes.pad

    async def window(self) -> tuple[dict[tuple[int, int], int], dict[int, int], float]:
        """Every writer at rate/USERS, phase-shifted. Returns (user, seq) → commit time of the measured
        events, each user's last seq, and the rate achieved."""
        measured: dict[tuple[int, int], int] = {}
        heads: dict[int, int] = {}
        sizes = self.sizes
        rate = sizes.rate_per_s

        async def write_events(user: int) -> None:
            writer, conn = self.writers[user], self.conns[user]
            await asyncio.sleep(user / rate)  # phase shift: the writers take turns

            async def write(i: int) -> None:
                seq = await writer.write(conn)
                if i >= sizes.warmup_per_user:
                    measured[user, seq] = time.perf_counter_ns()
                heads[user] = seq

            await paced(rate / USERS, sizes.warmup_per_user + sizes.events_per_user, write)

        began = time.perf_counter()
        await asyncio.gather(*(write_events(user) for user in range(USERS)))
        written = USERS * (sizes.warmup_per_user + sizes.events_per_user)
        return measured, heads, written / (time.perf_counter() - began)


def tag_of(user: int) -> str:
    return f"u{user}"


def busy_fraction(before: Any, after: Any) -> float:
    """Share of all cores' time not idle (nor waiting on I/O) between two `psutil.cpu_times()`."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total else float("nan")


async def measure(workload: Workload, label: str, *, stalled: bool) -> Run:
    accounts = workload.accounts
    server = await start_app_server(
        workload.dsn, f"p6-server-{label}", MAX_SOCKETS_PER_USER=str(SOCKETS_PER_USER)
    )
    swarms = Swarms(f"p6-{label}")
    raw: RawWebSocket | None = None
    try:
        await swarms.start()
        process = psutil.Process(server.pid)
        for user, account in enumerate(accounts):
            healthy = SOCKETS_PER_USER - (1 if user == STALLED_USER else 0)
            _ok, failed = await swarms.open(server.ws_url, tag_of(user), account.token, healthy, record=True)
            if failed:
                raise RuntimeError(f"P6 {label}: {failed} of user {user}'s sockets failed to open")
        stalled_start = 0
        if stalled:
            raw, stalled_start = await open_stalled(server, accounts[STALLED_USER].token)
        else:
            await swarms.open(server.ws_url, "extra", accounts[STALLED_USER].token, 1)
        trace(f"P6 {label}: {SOCKETS_PER_USER * USERS} sockets open")
        rss_open = await settled_rss(process)

        with RssSampler(process) as sampler:
            fill_began = time.monotonic()
            fill_seq = await workload.fill()
            for tag in [tag_of(STALLED_USER)] + ([] if stalled else ["extra"]):
                await wait_tag(swarms, tag, fill_seq, label)
            rss_filled = process.memory_info().rss
            trace(f"P6 {label}: fill of {workload.sizes.fill_events} events delivered")
            await asyncio.gather(*(swarm.call("reset") for swarm in swarms.members))

            machine_before, server_before = psutil.cpu_times(), sum(process.cpu_times()[:2])
            measured, heads, rate = await workload.window()
            for user, head in heads.items():
                await wait_tag(swarms, tag_of(user), head, label)
            machine_busy = busy_fraction(machine_before, psutil.cpu_times())
            server_cpu_s = sum(process.cpu_times()[:2]) - server_before
            stalled_for_s = time.monotonic() - fill_began
        rss_after = process.memory_info().rss
        trace(f"P6 {label}: window of {len(measured)} measured events delivered")

        stalled_user_ms, other_users_ms, snapshots = await collect(swarms, measured)
        expected = sum(SOCKETS_PER_USER - (user == STALLED_USER) for user, _seq in measured)
        report = None
        if raw is not None:
            report = StalledReport(head=heads[STALLED_USER])
            report.send_queue_bytes = send_queue_bytes(server.port, raw.sock.getsockname()[1])
            await asyncio.to_thread(drain_stalled, raw, report, stalled_start)
            raw = None
        return Run(
            label=label,
            stalled=stalled,
            latencies_ms=stalled_user_ms + other_users_ms,
            stalled_user_ms=stalled_user_ms,
            other_users_ms=other_users_ms,
            expected=expected,
            received=len(stalled_user_ms) + len(other_users_ms),
            snapshots=snapshots,
            rate_per_s=rate,
            rss_open=rss_open,
            rss_filled=rss_filled,
            rss_after=rss_after,
            rss_peak=sampler.peak,
            machine_busy=machine_busy,
            server_cpu_s=server_cpu_s,
            stalled_for_s=stalled_for_s if stalled else 0.0,
            stalled_report=report,
        )
    finally:
        if raw is not None:
            raw.close()
        await swarms.stop()
        await server.stop()


async def wait_tag(swarms: Swarms, tag: str, seq: int, label: str) -> None:
    """Until every socket of `tag` has `seq` (60 s at most, then the run fails)."""
    answers = await asyncio.gather(
        *(swarm.call("wait", tag=tag, seq=seq, within_s=60) for swarm in swarms.members)
    )
    behind = sum(answer["behind"] for answer in answers)
    lost = sum(answer["lost"] for answer in answers)
    if behind or lost:
        raise RuntimeError(f"P6 {label}: sockets of {tag} behind seq {seq}: {behind}; lost: {lost}")


async def collect(
    swarms: Swarms, measured: dict[tuple[int, int], int]
) -> tuple[list[float], list[float], int]:
    """Every receipt of a measured event on a measured socket, as commit → receipt in ms (the stalled
    user's, the other users'); and the number of snapshots the measured sockets got after `ready`
    (overflows: there should be none)."""
    stalled_user: list[float] = []
    other_users: list[float] = []
    for user in range(USERS):
        into = stalled_user if user == STALLED_USER else other_users
        for seq, arrivals in (await swarms.times(tag_of(user))).items():
            commit_ns = measured.get((user, seq))
            if commit_ns is not None:
                into.extend((arrival - commit_ns) / 1e6 for arrival in arrivals)
    stats = await asyncio.gather(*(swarm.call("stats") for swarm in swarms.members))
    measured_tags = {tag_of(user) for user in range(USERS)}
    snapshots = sum(
        tag_stats["snapshots_after_ready"]
        for answer in stats
        for name, tag_stats in answer.items()
        if name in measured_tags
    )
    return stalled_user, other_users, snapshots


def median_of_runs(runs: list[Run]) -> dict[str, float]:
    """Each quantile's median over the runs: one run that the other tenants of the machine hit hard
    (they do, for seconds at a time) moves it less than it moves the pooled quantiles."""
    return {q: statistics.median(r.stats[q] for r in runs) for q in QUANTILES}


def mb(value: float) -> str:
    return fmt(value / 2**20, 1)


def run_row(run: Run) -> list[str]:
    stats = run.stats
    return [
        f"{run.label}: {'1 stalled + 499' if run.stalled else '500 reading'}",
        f"{run.received:,} / {run.expected:,}",
        f"{run.rate_per_s:.0f}",
        *(fmt(stats[q], 1) for q in QUANTILES),
        fmt_ratio(run.siblings_p99_ratio),
        f"{100 * run.machine_busy:.0f}% / {run.cpu_us_per_delivery:.0f}",
        mb(run.rss_open),
        "+" + mb(run.rss_filled - run.rss_open),
        "+" + mb(run.rss_after - run.rss_open),
        "+" + mb(run.rss_peak - run.rss_open),
    ]


def ratio_row(label: str, b: dict[str, float], a: dict[str, float], growth_mb: float) -> list[str]:
    ratios = [fmt_ratio(ratio(b[q], a[q])) for q in QUANTILES]
    return [label, "", "", *ratios, "", "", "", "", f"{growth_mb:+.1f}", ""]


async def run(bench: Bench) -> Result:
    sizes = QUICK if bench.quick else FULL
    dsn = await bench.databases.clone("p6")
    accounts = await create_accounts(dsn, USERS, prefix="p6-")
    job_ids = await create_jobs(dsn, [account.user_id for account in accounts], total=10**9)
    workload = Workload(dsn, accounts, job_ids, sizes)
    await workload.connect()
    pairs: list[tuple[Run, Run]] = []
    runs: list[Run] = []
    """In the order they ran."""
    try:
        for pair in range(1, sizes.pairs + 1):
            order = (False, True) if pair % 2 else (True, False)
            done: dict[bool, Run] = {}
            for stalled in order:
                label = f"{'B' if stalled else 'A'}{pair}"
                done[stalled] = await measure(workload, label, stalled=stalled)
                runs.append(done[stalled])
                trace(f"P6 {label}: done")
            pairs.append((done[False], done[True]))
    finally:
        await workload.close()

    a_runs, b_runs = [a for a, _b in pairs], [b for _a, b in pairs]
    a_all = summary([x for r in a_runs for x in r.latencies_ms])
    b_all = summary([x for r in b_runs for x in r.latencies_ms])
    a_median, b_median = median_of_runs(a_runs), median_of_runs(b_runs)
    a_growth = statistics.median(r.growth_mb for r in a_runs)
    b_growth = statistics.median(r.growth_mb for r in b_runs)
    rows = [run_row(r) for r in runs]
    rows += [
        ratio_row(f"{b.label} / {a.label}", b.stats, a.stats, b.growth_mb - a.growth_mb) for a, b in pairs
    ]
    if len(pairs) > 1:
        rows.append(ratio_row("median of B runs / of A runs", b_median, a_median, b_growth - a_growth))
        a_mean = sum(r.growth_mb for r in a_runs) / len(a_runs)
        b_mean = sum(r.growth_mb for r in b_runs) / len(b_runs)
        rows.append(ratio_row("all B / all A (pooled)", b_all, a_all, b_mean - a_mean))
    p99_ratio = ratio(b_median["p99"], a_median["p99"])
    p50_ratio = ratio(b_median["p50"], a_median["p50"])
    cpu_ratio = ratio(
        statistics.median(r.cpu_us_per_delivery for r in b_runs),
        statistics.median(r.cpu_us_per_delivery for r in a_runs),
    )
    worst_peak = max((r.rss_peak - r.rss_open) / 2**20 for r in b_runs)
    lost = sum(r.expected - r.received for r in runs)
    snapshots = sum(r.snapshots for r in runs)
    fill_mb = sizes.fill_events * (sizes.fill_pad + 300) / 2**20
    notes = [
        f"{USERS} users x {SOCKETS_PER_USER} sockets; window: {sizes.events_per_user} measured events a user "
        f"(after {sizes.warmup_per_user} unmeasured) at {sizes.rate_per_s:.0f}/s in all, messages padded "
        f"by {sizes.pad:,} characters; latency = commit → receipt on each of the 499 measured sockets",
        f"fill before each window (not measured): {sizes.fill_events:,} events of user {STALLED_USER} "
        f"padded by {sizes.fill_pad:,} characters (~{fill_mb:.0f} MB)",
        f"receipts missing on measured sockets: {lost}; snapshots after ready on them: {snapshots}",
        f"user 0 / others p99 = in the same run, p99 of the {SOCKETS_PER_USER - 1} measured sockets of user "
        f"{STALLED_USER} (the stalled socket's siblings in a run B) / p99 of the other users' sockets",
        "CPU = the whole machine's busy share during the window (all tenants) / the server's CPU time in "
        "the window per receipt on a measured socket",
        "RSS: at open = after the 500 sockets opened (settled); fill, window = growth since then; "
        "peak = highest sample (every 0.2 s) from the fill to the end of the window",
        *(
            f"{r.label} stalled socket, stalled {r.stalled_for_s:.1f} s (fill start → window end; the "
            f"session gives up after {STALL_LIMIT_S:.0f} s): {r.stalled_report.line()}"
            for r in b_runs
            if r.stalled_report is not None
        ),
        f"server CPU per receipt, median of B runs / of A runs: {fmt_ratio(cpu_ratio)} "
        f"({statistics.median(r.cpu_us_per_delivery for r in b_runs):.0f} / "
        f"{statistics.median(r.cpu_us_per_delivery for r in a_runs):.0f} µs)",
        f"targets: the median over the runs of each kind (one run per kind: that pair); p50 ratio B / A "
        f"{fmt_ratio(p50_ratio)}; RSS growth over the window A {a_growth:.1f} MB, B {b_growth:.1f} MB; "
        f"worst peak growth in a run B {worst_peak:.1f} MB",
        "clients: two raw-protocol swarm processes (+ the stalled raw socket in the bench process); "
        "server, clients, writers and Postgres share the 2 cores, load average at the end "
        f"{os.getloadavg()[0]:.1f}",
    ]
    return Result(
        key="P6",
        title=(
            f"one stalled socket among {USERS * SOCKETS_PER_USER} ({USERS} users x {SOCKETS_PER_USER}), "
            f"{sizes.rate_per_s:.0f} events/s, ms"
        ),
        columns=[
            "run",
            "receipts",
            "events/s",
            *QUANTILES,
            "user 0 / others p99",
            "CPU machine / server µs a receipt",
            "RSS at open MB",
            "fill MB",
            "window MB",
            "peak MB",
        ],
        rows=rows,
        targets=[
            Target("P6 healthy sockets' p99, stalled / no stalled socket", p99_ratio, 1.2),
            Target(
                "P6 server RSS growth, stalled run minus normal run", b_growth - a_growth, 16.0, unit="MB"
            ),
        ],
        notes=notes,
        data={
            "sizes": asdict(sizes),
            "runs": [r.as_json() for r in runs],
            "pooled_a_ms": a_all,
            "pooled_b_ms": b_all,
            "median_of_runs_a_ms": a_median,
            "median_of_runs_b_ms": b_median,
            "p99_ratio": p99_ratio,
            "p50_ratio": p50_ratio,
            "server_cpu_ratio": cpu_ratio,
            "growth_a_mb": a_growth,
            "growth_b_mb": b_growth,
            "stalled_honest": all(r.stalled_report is None or r.stalled_report.honest for r in b_runs),
        },
    )
