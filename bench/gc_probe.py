"""Server factories that report every full (generation 2) collection of the server process on stderr (its
log): `gc-pause pid=.. gen=2 wall_ms=.. cpu_ms=..`. The benchmarks' servers all run under them; `gc_pauses`
reads the pauses back from a server's log (P3, P8). Serve with

    uvicorn --factory bench.gc_probe:app_from_env      (or bare_from_env: the bare forwarder)
"""

from __future__ import annotations

import gc
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.bare_server import ASGIApp
from bench.bare_server import create_app_from_env as create_bare

_LINE = re.compile(r"gc-pause pid=(\d+) gen=(\d) wall_ms=([\d.]+) cpu_ms=([\d.]+) at=([\d.]+)")


def install() -> None:
    started: list[tuple[float, float]] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append((time.perf_counter(), time.thread_time()))
        elif started:
            wall, cpu = started.pop()
            wall_ms, cpu_ms = 1000 * (time.perf_counter() - wall), 1000 * (time.thread_time() - cpu)
            line = f"gc-pause pid={os.getpid()} gen={info['generation']} wall_ms={wall_ms:.2f}"
            print(f"{line} cpu_ms={cpu_ms:.2f} at={time.monotonic():.3f}", file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)


def app_from_env() -> Any:
    from app.asgi import create_app_from_env

    install()
    return create_app_from_env()


def bare_from_env() -> ASGIApp:
    install()
    return create_bare()


def gc_pauses(log: Path, pid: int, *, since: float = 0.0) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of every full collection the process `pid` logged after `since` (monotonic time,
    the same clock in every process: e.g. once the server is up, past the startup's own collections)."""
    found = []
    for match in _LINE.finditer(log.read_text(errors="replace")):
        if int(match[1]) == pid and int(match[2]) == 2 and float(match[5]) >= since:
            found.append((float(match[3]), float(match[4])))
    return found
