"""P7 refuse early: a 2 MB import of 1,000,000 one-character lines (20 times the row limit) is refused
with 413, and `/api/health` stays prompt while three such files arrive at once.

One app server (the shared one). Measured from the client, on loopback:
- refusal: wall time from sending the POST to the 413, once on a fresh server (the parser's worker
  process starts on that first large import) and then warm (median of several);
- health: `GET /api/health` sent one after another, first with nothing else going on (the baseline, in
  the same run), then while three clients each upload the file again and again; p50, p99 and max.
The parser stops reading at the first row past IMPORT_MAX_ROWS and runs in a worker process
(app/imports/pool.py), so neither the CPU nor the GIL of the web process is held by the file.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import httpx

from bench.common import (
    Bench,
    Result,
    Server,
    Target,
    create_accounts,
    fmt,
    fmt_ratio,
    percentile,
    ratio,
    start_app_server,
    trace,
)

LINES = 1_000_000
UPLOADERS = 3


def million_lines() -> bytes:
    return b"x\n" * LINES


async def refuse_once(http: httpx.AsyncClient, list_id: str, body: bytes) -> float:
    began = time.perf_counter()
    response = await http.post(
        f"/api/lists/{list_id}/imports", content=body, headers={"Content-Type": "text/plain"}
    )
    elapsed = time.perf_counter() - began
    if response.status_code != 413:
        raise RuntimeError(f"expected 413, got {response.status_code}: {response.text[:300]}")
    return elapsed


async def health_latencies_ms(server: Server, duration_s: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            response = await http.get("/api/health")
            latencies.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
            await asyncio.sleep(0.01)
    return latencies


async def upload_for(seconds: float, base_url: str, token: str, list_id: str) -> list[float]:
    body = million_lines()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as http:
        while time.perf_counter() < deadline:
            times.append(await refuse_once(http, list_id, body))
    return times


def uploads_in_a_process(seconds: float, base_url: str, token: str, list_id: str) -> list[float]:
    """UPLOADERS clients uploading at once, in a process of their own: sending 2 MB bodies on the
    measuring process's event loop would delay its health requests and count against the server."""

    async def all_of_them() -> list[float]:
        runs = [upload_for(seconds, base_url, token, list_id) for _ in range(UPLOADERS)]
        return [s for times in await asyncio.gather(*runs) for s in times]

    return asyncio.run(all_of_them())


def row(label: str, values: list[float]) -> list[str]:
    return [
        label,
        str(len(values)),
        fmt(percentile(values, 50)),
        fmt(percentile(values, 99)),
        fmt(max(values)),
    ]


async def run(bench: Bench) -> Result:
    dsn = await bench.databases.clone("p7")
    # Its own server: the imports-per-user limit would answer 429 long before the run is over.
    server = await start_app_server(dsn, "p7-server", IMPORTS_PER_MINUTE="1000000")
    try:
        return await measure(bench, dsn, server)
    finally:
        await server.stop()


async def measure(bench: Bench, dsn: str, server: Server) -> Result:
    [account] = await create_accounts(dsn, 1, prefix="p7-")
    body = million_lines()
    rounds = 4 if bench.quick else 10
    window_s = 3.0 if bench.quick else 8.0
    headers = {"Authorization": f"Bearer {account.token}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, headers=headers) as http:
        created = await http.post("/api/lists", json={"name": "P7"})
        created.raise_for_status()
        list_id = created.json()["id"]
        trace("P7: first refusal")
        first_s = await refuse_once(http, list_id, body)
        warm_s = [await refuse_once(http, list_id, body) for _ in range(rounds)]

    trace("P7: health, idle")
    idle = await health_latencies_ms(server, window_s)
    trace("P7: health, three uploads at once")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as uploader:
        await asyncio.get_running_loop().run_in_executor(uploader, time.sleep, 0)  # started
        uploads = asyncio.get_running_loop().run_in_executor(
            uploader, uploads_in_a_process, window_s + 1.0, server.base_url, account.token, list_id
        )
        await asyncio.sleep(0.5)  # all three under way
        loaded = await health_latencies_ms(server, window_s)
        concurrent_s = await uploads

    refusal_ms = [s * 1000 for s in warm_s]
    concurrent_ms = [s * 1000 for s in concurrent_s]
    megabytes = len(concurrent_ms) * len(body) / 2**20

    def loaded_ratio(q: float) -> str:
        return fmt_ratio(ratio(percentile(loaded, q), percentile(idle, q)))

    return Result(
        key="P7",
        title=f"refuse early: a 2 MB file of {LINES:,} lines, and /api/health meanwhile (ms)",
        columns=["measure", "n", "p50", "p99", "max"],
        rows=[
            ["refusal (413), first after start", "1", fmt(first_s * 1000), "", ""],
            row("refusal (413), warm, one at a time", refusal_ms),
            row(f"refusal (413), {UPLOADERS} at once", concurrent_ms),
            row("/api/health, idle (baseline)", idle),
            row(f"/api/health, {UPLOADERS} uploads at once", loaded),
            [
                "/api/health ratio loaded / idle",
                "",
                fmt_ratio(ratio(percentile(loaded, 50), percentile(idle, 50))),
                fmt_ratio(ratio(percentile(loaded, 99), percentile(idle, 99))),
                "",
            ],
        ],
        targets=[
            Target(
                "P7 refusal of the million-line file, warm median", statistics.median(refusal_ms), 500, "ms"
            ),
            Target("P7 refusal of the million-line file, first after start", first_s * 1000, 500, "ms"),
            Target(f"P7 /api/health max while {UPLOADERS} such files arrive", max(loaded), 100, "ms"),
        ],
        notes=[
            f"{len(concurrent_ms)} refusals during the {window_s:.0f} s loaded window "
            f"({len(concurrent_ms) / window_s:.1f} a second, {megabytes / window_s:.1f} MB/s uploaded)",
        ],
        data={
            "first_s": first_s,
            "warm_s": warm_s,
            "idle_ms": idle,
            "loaded_ms": loaded,
            "concurrent_s": concurrent_s,
        },
    )
