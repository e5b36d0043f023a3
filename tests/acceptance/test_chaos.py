"""docs/design.md, invariant 1, all faults at once: every progress event a user's jobs write reaches
each of that user's sockets exactly once, in seq order, while clients reconnect, the hub's LISTEN
connection is killed, the web process restarts, Postgres restarts and the worker is SIGKILLed mid-job.

One web process and one worker process on a private cluster, the fake YouTube in Data API mode. The
default (CI) size takes about two minutes; `CHAOS_SCALE=full` runs the full size; `CHAOS_SEED=N` replays
a run's fault plan. Run with `-s` to see the summary table (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.settings import Settings
from testkit.accounts import Account, create_account
from testkit.harness import READ_TIMEOUT_S, Ledger, ServerProcess, app_env
from tests.acceptance.chaos_support import (
    TERMINAL,
    WORKER_KILL,
    ChaosClient,
    ChaosDriver,
    ChaosReport,
    ChaosScale,
    Fault,
    SocketVerdict,
    TimedYouTube,
    UserTruth,
    WorkerFleet,
    chaos_log_dir,
    chaos_scale,
    chaos_seed,
    event_time,
    fetch,
    judge_socket,
    listed_prefix,
    plan_faults,
    read_hub_log,
    read_truth,
    short,
    user_video_ids,
)
from tests.acceptance.cluster import create_database, private_cluster

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test

PROGRESS_INTERVAL_MS = 0
"""An event for every committed batch: the most events these jobs can write."""
JOBS_END_TIMEOUT_S = 180.0
"""After the last fault: a worker-kill stall (heartbeat 15 s + sweep 5 s) and SAQ's retry backoff fit."""
CLIENTS_FINISH_TIMEOUT_S = 30.0
REFUSING_CODES = frozenset({1008, 1013, 4401, 4403, 4429, 4430})
"""Close codes that would mean the server refused a well-behaved client (bad message, too slow, auth)."""


async def test_every_event_reaches_every_socket_once_in_order_through_chaos(tmp_path: Path) -> None:
    """Three users' sockets follow a big import each through reconnects, listener kills, web and Postgres
    restarts and a worker SIGKILL: every socket ends with exactly its user's table, once each, in order
    (or an honest snapshot), history equals the table, and every job ends with counts equal to its videos."""
    scale, seed = chaos_scale(), chaos_seed()
    logs = chaos_log_dir(tmp_path, seed)
    print(f"\nchaos run: scale {scale.name}, seed {seed} (replay: CHAOS_SEED={seed}); logs in {logs}")
    rng = random.Random(seed)
    wall_started = time.monotonic()
    with (
        private_cluster(logs) as (admin_url, cluster),
        TimedYouTube(latency_ms=scale.latency_ms) as youtube,
    ):
        dsn = await create_database(admin_url)
        accounts = await create_accounts(dsn, scale.users)
        server = ServerProcess(env=app_env(dsn), log_path=logs / "web.log")
        workers = WorkerFleet(worker_env(dsn, youtube, scale), logs)
        clients = [
            ChaosClient(server.ws_url, account.token, name=f"u{user + 1}/s{socket + 1}")
            for user, account in enumerate(accounts)
            for socket in range(scale.sockets_per_user)
        ]
        tasks: list[asyncio.Task[Ledger]] = []
        try:
            async with asyncio.timeout(scale.deadline_s):
                await server.start()
                workers.start()
                tasks = [asyncio.create_task(client.run(deadline_s=scale.deadline_s)) for client in clients]
                await wait_until(lambda: all(c.established for c in clients), "every socket to be ready")
                job_ids = []
                for user, account in enumerate(accounts):
                    ids = user_video_ids(user, scale.videos_per_user, scale.unavailable_per_user, rng)
                    job_ids.append(await start_import(server.base_url, account, ids))
                await wait_for_every_job_to_start(dsn, scale.users)

                faults = plan_faults(rng, scale.fault_counts(), scale.fault_window_s)
                driver = ChaosDriver(
                    rng, dsn, cluster, server, workers, clients, youtube,
                    prefixes=[listed_prefix(user) for user in range(scale.users)],
                    listed_per_user=scale.videos_per_user - scale.unavailable_per_user,
                    log_path=logs / "faults.log",
                )  # fmt: skip
                await driver.run(faults)
                youtube.latency_ms = scale.drain_latency_ms

                await wait_for_every_job_to_end(dsn, workers, logs)
                truths = [await read_truth(dsn, user, a.user_id) for user, a in enumerate(accounts)]
                for index, client in enumerate(clients):
                    client.target = truths[index // scale.sockets_per_user].head
                await finish_clients(clients, tasks)
                histories = [await read_history(server.base_url, account) for account in accounts]
                worker_alive = workers.current.poll() is None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.stop()
            workers.stop_all()

    verdicts = [
        judge_socket(client, truths[index // scale.sockets_per_user]) for index, client in enumerate(clients)
    ]
    report = ChaosReport(
        scale=scale,
        seed=seed,
        faults=faults,
        landed_mid_job=faults_landed_mid_job(faults, truths),
        truths=truths,
        verdicts=verdicts,
        hub=read_hub_log(logs / "web.log"),
        worker_recovery=worker_recovery(faults, truths),
        holds=driver.holds,
        wall_s=time.monotonic() - wall_started,
    )
    print(report.render())

    problems = run_problems(scale, faults, report.landed_mid_job, worker_alive)
    for truth, history, job_id in zip(truths, histories, job_ids, strict=True):
        problems += user_problems(scale, truth, history, job_id)
    for verdict in verdicts:
        problems += socket_problems(verdict, truths[verdict.user])
    assert not problems, f"seed {seed}, logs in {logs}:\n" + "\n".join(problems)


# ---- setup ----


def worker_env(dsn: str, youtube: TimedYouTube, scale: ChaosScale) -> dict[str, str]:
    return app_env(
        dsn,
        YOUTUBE_API_KEY=youtube.api_key,
        YOUTUBE_API_URL=youtube.api_url,
        YOUTUBE_OEMBED_URL=youtube.oembed_url,
        PROGRESS_INTERVAL_MS=str(PROGRESS_INTERVAL_MS),
        WORKER_CONCURRENCY=str(max(4, scale.users)),  # every user's job runs at once
    )


async def create_accounts(dsn: str, count: int) -> list[Account]:
    engine = create_async_engine(Settings(database_url=dsn).sqlalchemy_url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        return [await create_account(sessions, f"chaos{user + 1}@example.com") for user in range(count)]
    finally:
        await engine.dispose()


async def start_import(base_url: str, account: Account, ids: list[str]) -> str:
    """A list and a pasted-links import into it, through the API; returns the job id."""
    async with httpx.AsyncClient(base_url=base_url, headers=account.headers, timeout=30) as http:
        created = await http.post("/api/lists", json={"name": "Chaos"})
        assert created.status_code == 201, created.text
        response = await http.post(
            f"/api/lists/{created.json()['id']}/imports",
            content="\n".join(ids).encode(),
            headers={"Content-Type": "text/plain"},
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(ids), body
    job_id: str = body["job"]["id"]
    return job_id


# ---- waits (each bounded) ----


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = READ_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_for_every_job_to_start(dsn: str, jobs: int) -> None:
    """The fault window opens once every job has written its first event."""
    async with asyncio.timeout(60):
        while True:
            rows = await fetch(dsn, "SELECT count(DISTINCT job_id) AS n FROM progress_events")
            if rows[0]["n"] == jobs:
                return
            await asyncio.sleep(0.1)


async def wait_for_every_job_to_end(dsn: str, workers: WorkerFleet, log_dir: Path) -> None:
    """Every job terminal within JOBS_END_TIMEOUT_S; otherwise fail with the jobs', SAQ's and workers' state."""
    deadline = time.monotonic() + JOBS_END_TIMEOUT_S
    while True:
        jobs = await fetch(
            dsn, "SELECT id, status, processed, total, last_seq, message FROM jobs ORDER BY created_at"
        )
        if all(job["status"] in TERMINAL for job in jobs):
            return
        if time.monotonic() > deadline:
            saq = await fetch(dsn, "SELECT key, status, queued, started, touched FROM saq_jobs ORDER BY key")
            raise AssertionError(
                f"jobs did not end within {JOBS_END_TIMEOUT_S:.0f} s of the last fault:\n"
                + "\n".join(f"  job {dict(job)}" for job in jobs)
                + "\n"
                + "\n".join(f"  saq {dict(row)}" for row in saq)
                + f"\n  workers (pid, exit code): {[(p.pid, p.poll()) for p in workers.processes]}"
                + f"\n  logs: {log_dir}"
            )
        await asyncio.sleep(0.5)


async def finish_clients(clients: list[ChaosClient], tasks: list[asyncio.Task[Ledger]]) -> None:
    """Each client ends once it has its user's last seq; one that cannot is recorded, not waited for."""
    _, pending = await asyncio.wait(tasks, timeout=CLIENTS_FINISH_TIMEOUT_S)
    for client, task in zip(clients, tasks, strict=True):
        if task in pending:
            client.anomalies.append(
                f"did not reach seq {client.target} within {CLIENTS_FINISH_TIMEOUT_S:.0f} s of the jobs "
                f"ending (last seq {client.ledger.last_seq})"
            )
            task.cancel()
        elif task.exception() is not None:
            client.anomalies.append(f"client stopped: {task.exception()!r}")
    await asyncio.gather(*pending, return_exceptions=True)


async def read_history(base_url: str, account: Account) -> list[dict[str, Any]]:
    """The user's whole stream through `GET /api/progress`, page by page."""
    events: list[dict[str, Any]] = []
    after = 0
    async with httpx.AsyncClient(base_url=base_url, headers=account.headers, timeout=30) as http:
        while True:
            response = await http.get("/api/progress", params={"after_seq": after, "limit": 1000})
            assert response.status_code == 200, response.text
            page = response.json()
            events.extend(page["events"])
            if page["next_after_seq"] is None:
                return events
            after = page["next_after_seq"]


# ---- the verdict ----


def faults_landed_mid_job(faults: list[Fault], truths: list[UserTruth]) -> Counter[str]:
    """Faults that began after every job's first event and ended before any job's last one."""
    firsts = [event_time(t.events[min(t.events)]) for t in truths if t.events]
    lasts = [event_time(t.events[max(t.events)]) for t in truths if t.events]
    if len(firsts) != len(truths):
        return Counter()
    return Counter(f.kind for f in faults if f.wall_start >= max(firsts) and f.wall_end <= min(lasts))


def worker_recovery(faults: list[Fault], truths: list[UserTruth]) -> list[str]:
    """For each worker kill: when each job's next event ("Resuming") was written."""
    lines = []
    for fault in faults:
        if fault.kind != WORKER_KILL:
            continue
        after = []
        for truth in truths:
            later = [e for e in truth.events.values() if event_time(e) > fault.wall_end]
            if later:
                first = min(later, key=lambda e: e["seq"])
                after.append(
                    f"u{truth.index + 1} {first['message']!r} {event_time(first) - fault.wall_end:.1f}s"
                )
        lines.append(
            f"after the worker SIGKILL at +{fault.started_s:.1f}s, the next event: " + "; ".join(after)
        )
    return lines


def run_problems(
    scale: ChaosScale, faults: list[Fault], landed: Counter[str], worker_alive: bool
) -> list[str]:
    problems = []
    injected = Counter(fault.kind for fault in faults)
    for kind, planned in scale.fault_counts().items():
        if injected[kind] != planned or landed[kind] != planned:
            problems.append(
                f"{kind}: planned {planned}, injected {injected[kind]}, landed mid-job {landed[kind]}: "
                "the jobs must outlast the faults (raise the latency or shorten the window)"
            )
    if not worker_alive:
        problems.append("the last worker process exited during the run (see its log)")
    return problems


def user_problems(
    scale: ChaosScale, truth: UserTruth, history: list[dict[str, Any]], job_id: str
) -> list[str]:
    """The table is a gapless stream, history is the table, and the imported job (the user's only one)
    ended with counts equal to its videos."""
    user = f"u{truth.index + 1}"
    problems = []
    if truth.seqs != list(range(1, truth.head + 1)):
        problems.append(f"{user}: the table's seqs are not 1..{truth.head}: {short(truth.seqs)}")
    if history != [truth.events[seq] for seq in truth.seqs]:
        got = [event["seq"] for event in history]
        problems.append(f"{user}: /api/progress differs from the table: seqs {short(got)}")
    if list(truth.jobs) != [job_id]:
        problems.append(f"{user}: expected only the imported job {job_id}, found {list(truth.jobs)}")
    expected_videos = {
        "ready": scale.videos_per_user - scale.unavailable_per_user,
        "failed": scale.unavailable_per_user,
    }
    for job_id, job in truth.jobs.items():
        videos = job["videos"]
        counts = (job["total"], job["processed"], job["failed"])
        from_videos = (
            sum(videos.values()),
            videos.get("ready", 0) + videos.get("failed", 0),
            videos.get("failed", 0),
        )
        if job["status"] != "completed_with_errors" or videos != expected_videos or counts != from_videos:
            problems.append(
                f"{user}: job {job_id} ended {job['status']} with (total, processed, failed) {counts}; "
                f"its videos say {from_videos} {videos}, expected {expected_videos}"
            )
        problems += job_stream_problems(user, job_id, job, truth)
    return problems


def job_stream_problems(user: str, job_id: str, job: dict[str, Any], truth: UserTruth) -> list[str]:
    """`running` events with `processed` never decreasing, then one terminal event equal to the job row."""
    events = [truth.events[seq] for seq in truth.seqs if truth.events[seq]["job_id"] == job_id]
    if not events:
        return [f"{user}: job {job_id} wrote no event"]
    problems = []
    decreases = [
        (a["seq"], a["processed"], b["seq"], b["processed"])
        for a, b in itertools.pairwise(events)
        if b["processed"] < a["processed"]
    ]
    if decreases:
        problems.append(
            f"{user}: job {job_id} processed went down (seq, processed, seq, processed): {decreases}"
        )
    statuses = [event["status"] for event in events]
    if any(status in TERMINAL for status in statuses[:-1]) or statuses[-1] not in TERMINAL:
        problems.append(
            f"{user}: job {job_id} statuses are not running... then terminal: {Counter(statuses)}"
        )
    last = events[-1]
    fields = ("status", "processed", "failed", "total")
    if [last[f] for f in fields] != [job[f] for f in fields] or job["last_seq"] != last["seq"]:
        problems.append(f"{user}: job {job_id}'s last event {last} differs from its row {job}")
    return problems


def socket_problems(verdict: SocketVerdict, truth: UserTruth) -> list[str]:
    """Exactly its user's stream, once each, in order; where a snapshot replaced events, it said so."""
    name = verdict.name
    problems = [f"{name}: {anomaly}" for anomaly in verdict.anomalies]
    checks: list[tuple[str, list[Any]]] = [
        ("lost (neither received nor replaced by a snapshot)", verdict.lost),
        ("duplicated", verdict.duplicated),
        ("silent gaps or disorder (expected, got)", verdict.gaps),
        ("received but not in the table", verdict.phantom),
        ("payload differs from the table", verdict.payload_mismatches),
        ("another user's events", verdict.foreign),
        ("untrue snapshots", verdict.snapshot_errors),
    ]
    problems += [f"{name}: {what}: {short(values)}" for what, values in checks if values]
    if verdict.last_seq != truth.head:
        problems.append(f"{name}: ended at seq {verdict.last_seq}, the stream head is {truth.head}")
    if verdict.exact and verdict.seqs != truth.seqs:
        problems.append(
            f"{name}: no mid-stream snapshot, yet its seqs {short(verdict.seqs)} are not the table's"
        )
    refused = {code: n for code, n in verdict.close_codes.items() if code in REFUSING_CODES}
    if refused:
        problems.append(f"{name}: closed with refusing codes {refused}")
    return problems
