"""`bookmarks import` and `watch` against a real server: live bars, exit codes, a server restart
mid-import, a server that is not there yet, and a token the server refuses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.exits import ExitCode
from app.terminal import TERMINAL, LiveFollower, websocket_url
from testkit.accounts import Account
from testkit.fake_youtube import FakeYouTube
from testkit.harness import ROOT, ServerProcess, app_env, free_port


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
    """The CLI uploads, follows the job live across a web restart (in-process worker), saying that it lost
    the connection and when it got it back, and exits 0."""
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
    assert "accepted 1,500, duplicates 0, invalid 0 (of 1,500 lines)" in text
    lost = text.index("Lost the connection (the server is restarting); reconnecting…")
    back = text.index("Reconnected after ")
    assert lost < back < text.index("completed: All 1,500 videos ready"), text


async def test_import_exit_codes_say_how_the_job_ended(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path
) -> None:
    """`bookmarks import` exits 0 only when every video is ready, 3 when some failed
    (completed_with_errors), 4 when the job failed (every video failed), 77 when the token is refused."""
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
    assert [code for code, _ in outcomes] == [0, 3, 4, ExitCode.NO_PERMISSION], outcomes
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


async def read_until(stream: asyncio.StreamReader, text: str, seen: list[str], timeout_s: float = 30) -> None:
    """Reads lines into `seen` until one contains `text`; fails with what was seen after `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while not any(text in line for line in seen):
                line = await stream.readline()
                if not line:
                    raise AssertionError(f"the output ended before {text!r}: {seen}")
                seen.append(line.decode(errors="replace"))
    except TimeoutError:
        raise AssertionError(f"no {text!r} within {timeout_s} s: {seen}") from None


async def test_watch_says_it_cannot_reach_the_server_and_connects_once_it_starts(
    database_url: str, alice: Account, tmp_path: Path
) -> None:
    """`watch` against a server that is not running says so at once and keeps trying (it does not hang
    silently); when the server starts on that port it connects; Ctrl-C ends it with 130."""
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    cli_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    watch = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import run_cli; run_cli()", "watch",
        "--server", server_url, "--token", alice.token,
        cwd=ROOT, env=cli_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server = ServerProcess(env=app_env(database_url), port=port, log_path=tmp_path / "server.log")
    seen: list[str] = []
    try:
        assert watch.stderr is not None
        await read_until(
            watch.stderr,
            f"Cannot reach the server at {server_url} (connection refused); trying again until it answers",
            seen,
        )
        await server.start()
        await read_until(watch.stderr, f"Connected to {server_url}.", seen)
        watch.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            code = await watch.wait()
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
        await server.stop()
    assert code == ExitCode.INTERRUPTED, seen
    assert not any("Traceback" in line for line in seen), seen


@pytest.mark.parametrize("command", ["import", "watch"])
async def test_a_refused_token_is_one_line_and_exit_77(
    server: ServerProcess, command: str, tmp_path: Path
) -> None:
    """A token the server does not know ends `import` (HTTP 401) and `watch` (close 4401) with one line on
    stderr and exit code 77, never a traceback."""
    file = tmp_path / "links.txt"
    file.write_text(links(2))
    args = ["import", str(file), "--list", "L"] if command == "import" else ["watch"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import run_cli; run_cli()", *args,
        "--server", server.base_url, "--token", "sytb_" + "x" * 43,
        cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    lines = err.decode().splitlines()
    assert process.returncode == ExitCode.NO_PERMISSION, lines
    assert len(lines) == 1 and lines[0].startswith("bookmarks: the server refused the token"), lines
    assert out == b""


async def list_names(server: ServerProcess, token: str) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        response = await http.get("/api/lists", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return sorted(item["name"] for item in response.json()["items"])


def run_cli(server: ServerProcess, token: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [*CLI, *args], cwd=ROOT, env=cli_env(server, token), capture_output=True, timeout=60
    )  # fmt: skip
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


async def test_a_refused_import_leaves_no_list_behind(
    server: ServerProcess, alice: Account, tmp_path: Path
) -> None:
    """A file the server refuses (nothing valid: 422) ends with exit 65 and writes nothing: the list the
    import made for it is gone again; a list that was already there stays."""
    file = tmp_path / "nothing-valid.txt"
    file.write_text("https://example.com/not-youtube\nhttps://www.youtube.com/playlist?list=PL123\n")
    code, output = await asyncio.to_thread(run_cli, server, alice.token, "import", str(file), "--list", "New")
    assert code == ExitCode.DATA, output
    assert "422" in output and "Created list" not in output
    assert await list_names(server, alice.token) == []

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        made = await http.post("/api/lists", json={"name": "Kept"}, headers=alice.headers)
    assert made.status_code == 201, made.text
    code, output = await asyncio.to_thread(
        run_cli, server, alice.token, "import", str(file), "--list", "Kept"
    )
    assert code == ExitCode.DATA, output
    assert await list_names(server, alice.token) == ["Kept"]


async def test_a_list_name_is_matched_as_the_server_stores_it(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path
) -> None:
    """`--list "Music "` and `--list Music` are one list (the server strips names): the second import finds
    it instead of making another."""
    server = await start_app_with_worker(database_url, youtube, tmp_path)
    file = tmp_path / "links.txt"
    file.write_text(links(2))
    try:
        first = await asyncio.to_thread(
            run_cli, server, alice.token, "import", str(file), "--list", " Music "
        )
        second = await asyncio.to_thread(run_cli, server, alice.token, "import", str(file), "--list", "Music")
        names = await list_names(server, alice.token)
    finally:
        await server.stop()
    assert first[0] == 0 and "Created list Music" in first[1], first
    assert second[0] == 0 and "Nothing new to fetch" in second[1], second
    assert names == ["Music"]


async def test_a_takeout_zip_makes_its_lists_and_is_followed_to_the_end(
    database_url: str, alice: Account, youtube: FakeYouTube, tmp_path: Path
) -> None:
    """`bookmarks import takeout.zip` (no --list) goes to the Takeout endpoint, says what each playlist
    brought, follows every job to its end and exits 0; with --list it is a usage error that writes
    nothing."""
    archive = Path(__file__).parents[1] / "data" / "takeout" / "takeout_new_layout.zip"
    server = await start_app_with_worker(database_url, youtube, tmp_path)
    try:
        refused = await asyncio.to_thread(
            run_cli, server, alice.token, "import", str(archive), "--list", "Music"
        )
        before = await list_names(server, alice.token)
        code, output = await asyncio.to_thread(run_cli, server, alice.token, "import", str(archive))
        after = await list_names(server, alice.token)
    finally:
        await server.stop()
    assert refused[0] == ExitCode.USAGE and "drop --list" in refused[1], refused
    assert before == []
    assert code == 0, output
    assert after == ["Learning / Practice", "Liked videos", "Road trip", "Watch later"]
    assert "Watch later (new list): accepted 4, duplicates 0, invalid 0" in output
    assert "skipped" in output and "Someday-videos.csv" in output
    assert output.count(": completed: All ") == 4, output
