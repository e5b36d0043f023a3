"""Browser fixtures: the app as a real uvicorn server (with its SAQ worker) on a fresh database, the fake
YouTube, a signed-up user, and Debian's Chromium driven by Playwright (never a downloaded browser).

A failed test leaves a screenshot of every open page and the server's log in `test-artifacts/<test>/`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, BrowserType, Playwright, expect, sync_playwright
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app import database
from app.services import users as user_service
from app.settings import Settings, replace_database
from testkit.fake_youtube import FakeYouTube
from tests.browser.harness import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    ROOT,
    THUMBNAIL_SVG,
    Account,
    AppServer,
    PageProblems,
    copy_log,
    run_async,
    save_screenshots,
)
from tests.conftest import ADMIN_DSN

APP_FACTORY = os.environ.get("BROWSER_APP_FACTORY", "app.asgi:create_app_from_env")
"""What uvicorn serves; the default adds the dashboard routes only while the app lacks them."""
EXPECT_TIMEOUT_MS = 15_000

pytest.register_assert_rewrite("tests.browser.dashboard")


# -- failure artifacts --

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test, screenshots every page now, while the server and the pages are still as the
    failure left them (fixture teardown comes later)."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    context = getattr(item, "funcargs", {}).get("context")
    if report.when == "call" and report.failed and isinstance(context, BrowserContext):
        save_screenshots(context, artifact_dir(item))
    return report


def failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(_REPORTS, {}).values())


def artifact_dir(item: pytest.Item) -> Path:
    return ARTIFACTS / re.sub(r"[^\w.]+", "-", item.nodeid.removeprefix("tests/browser/")).strip("-")


# -- Chromium --


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """pytest-playwright's fixtures, package-scoped instead of session-scoped: while Playwright's sync API
    is started, its event loop is this thread's running loop, and the asyncio tests that pytest runs
    after this folder could not run theirs. Stopped after the last browser test, it is out of their way."""
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright) -> BrowserType:
    return playwright.chromium


@pytest.fixture(scope="package")
def launch_browser(
    browser_type: BrowserType, browser_type_launch_args: dict[str, Any]
) -> Callable[..., Browser]:
    def launch(**overrides: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **overrides})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is missing: apt-get install -y chromium (never `playwright install`)")
    return {"executable_path": executable, "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, "accept_downloads": True}


@pytest.fixture(autouse=True)
def problems(context: BrowserContext) -> Iterator[PageProblems]:
    """Watches every page of the test's context: an uncaught exception fails any test; console errors
    are asserted by the tests that expect none (a server restart rightly logs failed reconnects)."""
    found = PageProblems()
    context.on("page", found.watch)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    context.route(
        "https://i.ytimg.com/**",
        lambda route: route.fulfill(status=200, content_type="image/svg+xml", body=THUMBNAIL_SVG),
    )
    yield found
    assert not found.page_errors, f"uncaught errors in the page: {found.page_errors}"


# -- the server side --


def admin_sql(sql: str) -> None:
    async def execute() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(execute())


@pytest.fixture(scope="session")
def browser_template_database() -> Iterator[str]:
    """Migrated once per session. Not tests/conftest.py's `template_database`: that one calls asyncio.run
    on this thread, where Playwright's sync API may already run its loop."""
    name = f"bm_browser_template_{uuid.uuid4().hex[:8]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        # Alembic's env runs its own event loop: keep it off this thread too.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(database.upgrade, Settings(database_url=replace_database(ADMIN_DSN, name))).result()
        yield name
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def browser_database(browser_template_database: str) -> Iterator[str]:
    """A fresh database cloned from the migrated template, for one test's server."""
    name = f"bm_browser_{uuid.uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{browser_template_database}"')
    try:
        yield replace_database(ADMIN_DSN, name)
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube(latency_ms=0) as fake:
        yield fake


def server_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOUTUBE_", "DATABASE_URL"))}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **values})
    return env


@pytest.fixture
def server_settings() -> dict[str, str]:
    """Settings (environment variables) a test module adds to the server's: override this fixture."""
    return {}


@pytest.fixture
def server(
    browser_database: str,
    youtube: FakeYouTube,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    server_settings: dict[str, str],
) -> Iterator[AppServer]:
    """The whole app, web and worker in one process, on its own database, fetching from the fake."""
    env = server_env(
        DATABASE_URL=browser_database,
        RUN_WORKERS_IN_WEB="true",
        YOUTUBE_API_KEY=youtube.api_key,
        YOUTUBE_API_URL=youtube.api_url,
        YOUTUBE_OEMBED_URL=youtube.oembed_url,
        PROGRESS_INTERVAL_MS="100",
        **server_settings,
    )
    with AppServer(factory=APP_FACTORY, env=env, log_path=tmp_path / "server.log") as app_server:
        yield app_server
    if failed(request.node):
        copy_log(app_server, artifact_dir(request.node))


@pytest.fixture(scope="session")
def static_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """Only the dashboard's page and files (no database): for testing the page's modules on their own."""
    log_path = tmp_path_factory.mktemp("static") / "server.log"
    factory = "tests.browser.serve:create_dashboard_only_app"
    with AppServer(factory=factory, env=server_env(), log_path=log_path, health_path="/") as app_server:
        yield app_server


@pytest.fixture
def account(browser_database: str) -> Account:
    async def create() -> Account:
        engine = create_async_engine(Settings(database_url=browser_database).sqlalchemy_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                user = await user_service.create_user(session, "viewer@example.com")
                issued = await user_service.issue_token(session, user)
                await session.commit()
                return Account(email=user.email, token=issued.secret)
        finally:
            await engine.dispose()

    return run_async(create())


@pytest.fixture
def api(server: AppServer, account: Account) -> Iterator[httpx.Client]:
    """The HTTP API as the signed-up user, for arranging and checking what the page shows."""
    headers = {"Authorization": f"Bearer {account.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
        yield client
