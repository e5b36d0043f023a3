"""`bookmarks import` against a real server: live bars, exit codes, and a server restart mid-import."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.terminal import TERMINAL, LiveFollower, websocket_url
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from testkit.harness import ROOT, ServerProcess, app_env


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube(latency_ms=0) as fake:
        yield fake


CLI = (sys.executable, "-c", "from app.cli import run_cli; run_cli()")


async def start_app_with_worker(
    database_url: str, youtube: FakeYouTube, tmp_path: Path, **env: str
) -> ServerProcess:
    """The whole app (web and its in-process worker) fetching from the fake; the caller stops it."""
    server = ServerProcess(
        env=app_env(
            database_url,
            RUN_WORKERS_IN_WEB="true",
            YOUTUBE_API_KEY=youtube.api_key,
            YOUTUBE_API_URL=youtube.api_url,
            YOUTUBE_OEMBED_URL=youtube.oembed_url,
            **env,
        ),
        log_path=tmp_path / "server.log",
    )
    await server.start()
    return server


def cli_env(server: ServerProcess, token: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "BOOKMARKS_SERVER": server.base_url,
        "BOOKMARKS_TOKEN": token,
    }


def links(count: int, prefix: str = "t") -> str:
    return "\n".join(f"https://youtu.be/{prefix}{index:010d}" for index in range(count)) + "\n"


async def test_import_follows_the_job_through_a_server_restart(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path
) -> None:
    """The CLI uploads, follows the job live across a web restart (in-process worker), and exits 0."""
    youtube.latency_ms = 150
    server = await start_app_with_worker(database_url, youtube, tmp_path, PROGRESS_INTERVAL_MS="100")
    file = tmp_path / "links.txt"
    file.write_text(links(1500))
    cli = subprocess.Popen(
        [*CLI, "import", str(file), "--list", "CLI"],
        cwd=ROOT, env=cli_env(server, alice.token), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        follower = LiveFollower(
            websocket_url(server.base_url), alice.token, on_change=lambda _: None, done=started
        )
        await asyncio.wait_for(follower.run(), 30)
        await server.restart()
        output, _ = await asyncio.to_thread(cli.communicate, timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
        await server.stop()
    text = output.decode(errors="replace")
    assert cli.returncode == 0, text
    assert "accepted 1500, duplicates 0, invalid 0" in text
    assert "completed: All 1,500 videos ready" in text


async def test_import_exit_codes_say_how_the_job_ended(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path
) -> None:
    """`bookmarks import` exits 0 only when every video is ready, 3 when some failed
    (completed_with_errors), 4 when the job failed (every video failed), 1 on a client error."""
    server = await start_app_with_worker(database_url, youtube, tmp_path)

    def run_import(name: str, ids: list[str], token: str = alice.token) -> tuple[int, str]:
        file = tmp_path / name
        file.write_text("\n".join(ids) + "\n")
        done = subprocess.run(
            [*CLI, "import", str(file), "--list", "Codes"],
            cwd=ROOT, env=cli_env(server, token), capture_output=True, timeout=60,
        )  # fmt: skip
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")

    try:
        outcomes = [
            await asyncio.to_thread(run_import, "ready.txt", [f"vid{n:08d}" for n in range(3)]),
            await asyncio.to_thread(run_import, "some.txt", ["vid00000010", "prv00000001"]),
            await asyncio.to_thread(run_import, "none.txt", ["prv00000002", "del00000002"]),
            await asyncio.to_thread(run_import, "refused.txt", ["vid00000020"], "sytb_not-a-token"),
        ]
    finally:
        await server.stop()
    assert [code for code, _ in outcomes] == [0, 3, 4, 1], outcomes
    assert "completed: All 3 videos ready" in outcomes[0][1]
    assert "completed_with_errors: 1 ready, 1 failed of 2 videos" in outcomes[1][1]
    assert "failed: All 2 videos failed" in outcomes[2][1]
    assert "401" in outcomes[3][1]


def started(states: dict[str, dict[str, object]]) -> bool:
    return any(isinstance(s["processed"], int) and s["processed"] > 0 for s in states.values())


async def test_the_follower_never_applies_an_event_twice_across_reconnects(
    server: ServerProcess, database_url: str, alice: Account
) -> None:
    """Events seen before a reconnect are not applied again after it (dedupe by seq), and none are skipped."""
    from testkit.harness import EventWriter
    from tests.acceptance.test_live_delivery import write_events

    applied: list[int] = []

    class Recording(LiveFollower):
        def handle(self, frame: dict[str, object]) -> bool:
            before = self.last_seq
            done = super().handle(frame)
            if frame.get("type") == "event" and self.last_seq != before:
                applied.append(int(frame["seq"]))  # type: ignore[call-overload]
            return done

    writer = EventWriter(database_url, alice.user_id, total=200)
    follower = Recording(
        websocket_url(server.base_url),
        alice.token,
        on_change=lambda _: None,
        done=lambda states: any(s["status"] in TERMINAL for s in states.values()),
    )
    following = asyncio.create_task(follower.run())
    producing = asyncio.create_task(write_events(database_url, writer, 200, pause_s=0.01))
    await asyncio.sleep(0.5)
    await server.restart()
    await producing
    states = await asyncio.wait_for(following, 60)
    assert states[str(writer.job_id)]["status"] == "completed"
    assert applied == sorted(set(applied)), "an event was applied twice or out of order"
    assert follower.reconnects >= 1
