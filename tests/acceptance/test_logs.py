"""What `bookmarks run` prints over a whole import: a handful of lines a person can read, never a token,
and with LOG_FORMAT=json one JSON object a line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.terminal import TERMINAL, LiveFollower, websocket_url
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from testkit.harness import ROOT, free_port

VIDEOS = 2000
MAX_LINES = 20


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube(latency_ms=0) as fake:
        yield fake


async def wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=2) as client:
        while True:
            assert process.poll() is None, f"bookmarks run exited early:\n{log.read_text()}"
            try:
                if (await client.get(base_url + "/api/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(0.1)


async def import_and_follow(base_url: str, account: Account) -> dict[str, object]:
    """2,000 pasted links through the API, then one socket until the job ends: its final state."""
    async with httpx.AsyncClient(base_url=base_url, headers=account.headers, timeout=30) as api:
        listing = (await api.post("/api/lists", json={"name": "Logged"})).json()
        body = "\n".join(f"https://youtu.be/L{index:010d}" for index in range(VIDEOS))
        answer = await api.post(
            f"/api/lists/{listing['id']}/imports", content=body, headers={"Content-Type": "text/plain"}
        )
    job_id = answer.json()["job"]["id"]
    follower = LiveFollower(
        websocket_url(base_url),
        account.token,
        on_change=lambda _: None,
        done=lambda states: states.get(job_id, {}).get("status") in TERMINAL,
    )
    states = await asyncio.wait_for(follower.run(), 120)
    return states[job_id]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_whole_import_of_2000_videos_logs_under_20_lines_and_no_token(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path, log_format: str
) -> None:
    """`bookmarks run` (web and worker, oEmbed: one request per video) from start, through an import of
    2,000 videos followed on a socket, to Ctrl-C prints fewer than 20 lines at INFO: its greeting, the
    server's start and stop, the job's start and end with counts and duration, the socket's session. No
    line holds a token; with LOG_FORMAT=json every log line is one JSON object."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOUTUBE_", "LOG_"))} | {
        "DATABASE_URL": database_url, "RUN_WORKERS_IN_WEB": "true", "LOG_LEVEL": "INFO",
        "LOG_FORMAT": log_format, "YOUTUBE_OEMBED_URL": youtube.oembed_url, "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import run_cli; run_cli()", "run", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await wait_healthy(base_url, process, log)
        final = await import_and_follow(base_url, alice)
        process.send_signal(signal.SIGINT)
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert (final["status"], final["processed"]) == ("completed", VIDEOS)
    assert youtube.stats()["oembed_requests"] == VIDEOS
    lines = log.read_text().splitlines()
    text = "\n".join(lines)
    assert len(lines) < MAX_LINES, text
    assert alice.token not in text
    assert "sytb_" not in text, "no token, not even a sign-in link: this database has a user already"
    assert "signin-link" in text, "a later run says how to get a sign-in link"
    for event in ("started (0 of 2000 done)", "completed after", "progress socket ended"):
        assert event in text, (event, text)
    if log_format == "json":
        # The greeting (how to sign in) is for the person at the terminal; every log line after it is JSON.
        first = next(index for index, line in enumerate(lines) if line.startswith("{"))
        records = [json.loads(line) for line in lines[first:] if line]
        assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
        assert any(record["logger"] == "uvicorn.error" for record in records), "uvicorn's lines too"
        assert any(record["message"].startswith("job ") for record in records)
