"""What the browser tests run on: the app under uvicorn in a subprocess, and a watch over the pages.

Nothing here imports the app's runtime objects, so a server restart in a test is a real restart.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self, TypeVar

import httpx
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

from app.serving import uvicorn_arguments
from app.settings import Settings
from testkit.harness import free_port

ROOT: Final = Path(__file__).resolve().parents[2]
ARTIFACTS: Final = ROOT / "test-artifacts"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Thumbnails live on i.ytimg.com, which is unreachable here: the browser gets this picture instead.
THUMBNAIL_SVG: Final = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180" viewBox="0 0 320 180">'
    b'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
    b'<stop offset="0" stop-color="#3b5b8c"/><stop offset="1" stop-color="#8c3b5b"/></linearGradient></defs>'
    b'<rect width="320" height="180" fill="url(#g)"/><path d="M138 62v56l48-28z" fill="#fff"/></svg>'
)

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine on a loop of its own in another thread: Playwright's sync API owns this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class AppServer:
    """`uvicorn --factory <factory>` in a subprocess; restartable on the same port."""

    factory: str
    env: dict[str, str]
    log_path: Path
    health_path: str = "/api/health"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", self.factory,
                 *uvicorn_arguments(Settings.from_env(self.env)),
                 "--host", "127.0.0.1", "--port", str(self.port),
                 "--timeout-graceful-shutdown", "5", "--log-level", "info"],
                cwd=ROOT, env=self.env, stdout=log, stderr=log,
            )  # fmt: skip
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float) -> None:
        """Polls the health path; the browser only starts once this answers 200."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}: {self.log_path}")
                try:
                    if client.get(self.url + self.health_path).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.05)
        raise TimeoutError(f"the server on port {self.port} was not healthy within {timeout_s} s")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """SIGTERM (a graceful shutdown, like a deploy) and wait; SIGKILL only if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Account:
    email: str
    token: str


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions of every page of a browser context."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.location.get('url', '')}: {message.text}")


def save_screenshots(context: BrowserContext, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for index, page in enumerate(context.pages):
        if page.is_closed():
            continue
        try:
            page.screenshot(path=str(target / f"page-{index}.png"), full_page=True)
        except Error as exc:  # a crashed page: its screenshot is not worth hiding the test's own failure
            (target / f"page-{index}.txt").write_text(f"no screenshot: {exc}\n")


def copy_log(server: AppServer, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if server.log_path.exists():
        shutil.copy(server.log_path, target / f"server-{server.port}.log")
