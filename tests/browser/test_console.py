"""The queue console at /saq in a real Chromium: the browser's own Basic sign-in, SAQ's UI under our CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.browser.conftest import APP_FACTORY, server_env
from tests.browser.harness import Account, AppServer, PageProblems, run_async

pytestmark = pytest.mark.browser


def make_operator(database_url: str, email: str) -> None:
    async def update() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE users SET is_admin = true WHERE email = $1", email)
        finally:
            await conn.close()

    run_async(update())


@pytest.fixture
def idle_server(browser_database: str, tmp_path: Path) -> Iterator[AppServer]:
    """The app without its in-process worker, so a job waits in the queue for as long as the test looks."""
    env = server_env(DATABASE_URL=browser_database, RUN_WORKERS_IN_WEB="false")
    with AppServer(factory=APP_FACTORY, env=env, log_path=tmp_path / "server.log") as app_server:
        yield app_server


@pytest.fixture
def console(browser: Browser, idle_server: AppServer, account: Account) -> Iterator[BrowserContext]:
    """A browser that answers the console's Basic challenge with the account's token as the password."""
    context = browser.new_context(
        base_url=idle_server.url, http_credentials={"username": "operator", "password": account.token}
    )
    try:
        yield context
    finally:
        context.close()


def test_an_operator_signs_in_with_the_browser_prompt_and_aborts_a_job(
    console: BrowserContext, idle_server: AppServer, account: Account, browser_database: str
) -> None:
    """Queues → the queue → the job, in SAQ's own UI with no console error under our CSP; Abort there
    cancels the job for its owner."""
    make_operator(browser_database, account.email)
    headers = {"Authorization": f"Bearer {account.token}"}
    with httpx.Client(base_url=idle_server.url, headers=headers, timeout=10.0) as api:
        listing = api.post("/api/lists", json={"name": "Console"}).json()
        imported = api.post(
            f"/api/lists/{listing['id']}/imports",
            content="dQw4w9WgXcQ",
            headers={"Content-Type": "text/plain"},
        )
        job_id = imported.json()["job"]["id"]

        problems = PageProblems()
        page = console.new_page()
        problems.watch(page)
        page.goto(f"/#token={account.token}")  # the dashboard shows operators the way in
        page.get_by_role("link", name="Queue console").click()
        expect(page.get_by_role("heading", name="Queues")).to_be_visible()
        page.get_by_role("link", name="bookmarks").click()
        page.get_by_text(job_id).click()
        expect(page.get_by_text("process_job")).to_be_visible()
        assert page.url.endswith(f"/saq/queues/bookmarks/jobs/{job_id}")

        page.get_by_role("button", name="Abort").click()
        expect(page.get_by_role("button", name="Abort")).to_have_attribute("aria-busy", "false")
        assert api.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
    assert problems.console_errors == [], problems.console_errors
    assert problems.page_errors == [], problems.page_errors


def test_a_user_who_is_not_an_operator_is_turned_away(console: BrowserContext, account: Account) -> None:
    page = console.new_page()
    page.goto(f"/#token={account.token}")
    expect(page.get_by_text(account.email)).to_be_visible()
    expect(page.get_by_role("link", name="Queue console")).to_be_hidden()
    response = page.goto("/saq/")
    assert response is not None
    assert response.status == 403
    assert "for operators" in page.content()
