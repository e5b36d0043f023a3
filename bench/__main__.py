"""`python -m bench [--quick] [--only P1,P3] [--json PATH]`: run the benchmarks, print tables, write JSON.

Each benchmark gets its own database cloned from one migrated template (all dropped at the end) and
starts the processes it needs. See docs/benchmarks.md for what each measures and what limits it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import uvloop

from bench import (
    p1_latency,
    p2_throughput,
    p3_sockets,
    p4_import,
    p5_trigger,
    p6_stalled,
    p7_refuse,
    p8_storm,
    p9_channels,
)
from bench.common import ADMIN_DSN, Bench, Result, raise_nofile
from testkit.harness import ROOT

BENCHMARKS: dict[str, Callable[[Bench], Awaitable[Result]]] = {
    "P1": p1_latency.run,
    "P2": p2_throughput.run,
    "P3": p3_sockets.run,
    "P4": p4_import.run,
    "P5": p5_trigger.run,
    "P6": p6_stalled.run,
    "P7": p7_refuse.run,
    "P8": p8_storm.run,
    "P9": p9_channels.run,
}


def code_version() -> str:
    """The commit the app ran at, and whether app/, db/ or workers/ had local changes then."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "app", "db", "workers")
    return git("rev-parse", "--short", "HEAD") + (" with local changes in app/db/workers" if dirty else "")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


async def machine() -> dict[str, Any]:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        postgres = await conn.fetchval("SELECT version()")
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
        }
    finally:
        await conn.close()
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu_model(),
        "postgres": postgres,
        "postgres_settings": settings,
        "python": sys.version.split()[0],
        "code": code_version(),
        "packages": {
            name: version(name) for name in ("uvicorn", "websockets", "asyncpg", "litestar", "uvloop")
        },
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def main(args: argparse.Namespace) -> int:
    selected = [key.strip().upper() for key in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [key for key in selected if key not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    raise_nofile()
    info = await machine()
    mode = "quick" if args.quick else "full"
    print(
        f"# bench ({mode}) on {info['nproc']} x {info['cpu']}, {info['memory_gb']} GB, "
        f"{info['postgres'].split(' on ')[0]}"
    )
    print(f"code: {info['code']}; load average at start: {info['loadavg_at_start']}\n", flush=True)
    bench = Bench(quick=args.quick)
    results: dict[str, Result] = {}
    started = time.perf_counter()
    try:
        for key in selected:
            began = time.perf_counter()
            result = await BENCHMARKS[key](bench)
            result.seconds = time.perf_counter() - began
            results[key] = result
            print(result.render() + "\n", flush=True)
    finally:
        await bench.close()
    total_s = time.perf_counter() - started
    targets = [target for result in results.values() for target in result.targets]
    print(f"## targets ({sum(t.met for t in targets)} of {len(targets)} met; total {total_s:.0f} s)")
    for target in targets:
        print(target.line())
    path = Path(args.json or ROOT / "bench" / "results" / f"latest{'-quick' if args.quick else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "mode": mode,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "total_seconds": round(total_s, 1),
        "machine": info,
        "benchmarks": {key: result.as_json() for key, result in results.items()},
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: the whole run in under a minute")
    parser.add_argument("--only", help="comma-separated subset, e.g. P1,P3")
    parser.add_argument(
        "--json", help="where to write the results (default bench/results/latest[-quick].json)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
