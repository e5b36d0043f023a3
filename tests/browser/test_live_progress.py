"""The live panel in a real Chromium against a real server: bars, counts, tabs, restarts, cancel, retry."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from testkit.fake_youtube import FakeYouTube
from tests.browser.dashboard import (
    MID_PROGRESS,
    Dashboard,
    showing,
    status_class,
    video_ids,
    watch_urls,
)
from tests.browser.harness import Account, AppServer

pytestmark = pytest.mark.browser

SLOW_BATCH_MS = 1500
"""Per request to the fake YouTube (50 videos a request): a 400-video job takes 8 of these."""
BIG_IMPORT = 400


def test_an_import_of_ten_videos_fills_its_bar_and_the_table(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Ten pasted links: a bar appears, reaches 100% with its counts, and the ten rows fill in."""
    youtube.latency_ms = 300
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Music")

    board.import_text(watch_urls(video_ids(10)))

    expect(board.import_summary).to_have_text(re.compile(r"^Accepted 10 videos"))
    card = board.card()
    expect(card).to_be_visible()
    expect(board.bar(card)).to_have_attribute("aria-valuenow", "100")
    expect(board.bar(card)).to_have_attribute("aria-valuemin", "0")
    expect(board.bar(card)).to_have_attribute("aria-valuemax", "100")
    expect(board.bar(card)).to_have_accessible_name("Progress of 10 pasted links into Music")
    expect(card.locator(".job__percent")).to_have_text("100%")
    expect(board.counts(card)).to_have_text("10 of 10 videos processed, 0 failed")
    expect(board.rows).to_have_count(10)
    expect(board.rows.filter(has_text="Ready")).to_have_count(10)
    first_link = board.rows.first.get_by_role("link")
    expect(first_link).to_have_text(re.compile(r"^Video vid\d{8}$"))
    expect(first_link).to_have_attribute("href", re.compile(r"^https://www\.youtube\.com/watch\?v=vid"))
    expect(board.summary).to_have_text(showing(1, 10, 10))


def test_a_reopened_tab_shows_the_running_job_at_once_and_keeps_following_it(
    context: BrowserContext, server: AppServer, account: Account, youtube: FakeYouTube, api: httpx.Client
) -> None:
    """Closing the tab mid-job and opening a new one shows the job's current state, then its live updates."""
    youtube.latency_ms = SLOW_BATCH_MS
    first = Dashboard.sign_in_with_link(context.new_page(), server.url, account.token)
    first.create_list("Long one")
    first.import_text(watch_urls(video_ids(BIG_IMPORT)))
    expect(first.bar(first.card())).to_have_attribute("aria-valuenow", MID_PROGRESS)

    first.page.close()
    processed_before = api.get("/api/jobs", params={"state": "active"}).json()["items"][0]["processed"]
    assert 0 < processed_before < BIG_IMPORT

    second = Dashboard.open(context.new_page(), server.url)
    card = second.card()
    expect(card).to_have_class(status_class("running"), timeout=5_000)
    expect(second.bar(card)).to_have_attribute("aria-valuenow", MID_PROGRESS, timeout=5_000)
    assert processed_before <= second.processed(card) < BIG_IMPORT

    youtube.latency_ms = 0
    expect(second.bar(card)).to_have_attribute("aria-valuenow", "100")
    expect(second.counts(card)).to_have_text(f"{BIG_IMPORT} of {BIG_IMPORT} videos processed, 0 failed")
    expect(card).to_have_class(status_class("completed"))


def test_two_tabs_show_the_same_progress(
    context: BrowserContext, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Every event reaches both tabs of one user: they pass through the same values and end the same."""
    youtube.latency_ms = SLOW_BATCH_MS
    one = Dashboard.sign_in_with_link(context.new_page(), server.url, account.token)
    one.create_list("Shared")
    two = Dashboard.open(context.new_page(), server.url)

    one.import_text(watch_urls(video_ids(BIG_IMPORT)))

    expect(one.bar(one.card())).to_have_attribute("aria-valuenow", MID_PROGRESS)
    seen = one.bar(one.card()).get_attribute("aria-valuenow")
    assert seen is not None
    expect(two.bar(two.card())).to_have_attribute("aria-valuenow", seen)
    expect(two.card().locator(".job__title")).to_have_text(f"{BIG_IMPORT} pasted links")

    youtube.latency_ms = 0
    for board in (one, two):
        expect(board.bar(board.card())).to_have_attribute("aria-valuenow", "100")
        expect(board.counts(board.card())).to_have_text(
            f"{BIG_IMPORT} of {BIG_IMPORT} videos processed, 0 failed"
        )
    expect(one.cards).to_have_count(1)
    expect(two.cards).to_have_count(1)


def test_finished_jobs_show_their_outcome_in_text_and_colour(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """A clean job ends completed at 100%; a job with unavailable videos says why and is amber."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Mixed")

    board.import_text(watch_urls(video_ids(5)))
    done = board.pin(board.card())
    expect(done).to_have_class(status_class("completed"))
    expect(board.bar(done)).to_have_attribute("aria-valuenow", "100")
    expect(done.locator(".job__percent")).to_have_text("100%")
    expect(done.locator(".job__status")).to_have_text("Completed")
    expect(done.locator(".job__error")).to_be_hidden()
    expect(done.get_by_role("button", name="Retry")).to_be_hidden()

    broken = ["prv00000001", "del00000001"]
    board.import_text(watch_urls(video_ids(3, start=100) + broken))
    expect(board.cards).to_have_count(2)
    partial = board.pin(board.card(0))
    expect(partial).not_to_have_attribute("data-job-id", done.get_attribute("data-job-id") or "")
    expect(partial).to_have_class(status_class("completed_with_errors"))
    expect(partial.locator(".job__status")).to_have_text("Completed with errors")
    expect(board.bar(partial)).to_have_attribute("aria-valuenow", "100")
    expect(board.counts(partial)).to_have_text("5 of 5 videos processed, 2 failed")
    expect(partial.locator(".job__error")).to_have_text(re.compile(r"^Last error: (prv|del)00000001: .+"))
    expect(partial.get_by_role("button", name="Retry")).to_be_visible()
    # The two statuses are told apart by more than a class name: their colours differ.
    colours = [card.evaluate("el => getComputedStyle(el).borderLeftColor") for card in (done, partial)]
    assert colours[0] != colours[1]
    expect(board.rows.filter(has_text="Failed")).to_have_count(2)


def test_a_server_restart_mid_job_shows_the_banner_and_ends_at_the_true_state(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube, api: httpx.Client
) -> None:
    """SIGTERM to the web server mid-job: "Reconnecting…" shows, goes once it is back, and the bar ends
    exactly where the job did."""
    youtube.latency_ms = SLOW_BATCH_MS
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Restarted")
    board.import_text(watch_urls([*video_ids(BIG_IMPORT - 2), "prv00000009", "del00000009"]))
    card = board.pin(board.card())
    expect(board.bar(card)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    expect(board.connection_banner).to_be_hidden()

    server.stop()
    expect(board.connection_banner).to_have_text("Reconnecting…")
    expect(board.connection_banner).to_have_attribute("role", "status")

    youtube.latency_ms = 0
    server.start()
    expect(board.connection_banner).to_be_hidden(timeout=45_000)
    expect(card).to_have_class(status_class("completed_with_errors"), timeout=45_000)

    job = api.get("/api/jobs", params={"state": "finished"}).json()["items"][0]
    assert (job["status"], job["processed"], job["failed"]) == ("completed_with_errors", BIG_IMPORT, 2)
    expect(board.bar(card)).to_have_attribute("aria-valuenow", "100")
    expect(board.counts(card)).to_have_text(f"{BIG_IMPORT} of {BIG_IMPORT} videos processed, 2 failed")
    expect(board.cards).to_have_count(1)


def test_cancel_mid_job_then_retry_starts_a_new_bar_for_the_rest(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube, api: httpx.Client
) -> None:
    """Cancel stops a running job as `cancelled`; Retry starts a new job for the videos it did not do."""
    youtube.latency_ms = SLOW_BATCH_MS
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Cancel me")
    board.import_text(watch_urls(video_ids(BIG_IMPORT)))
    first = board.pin(board.card())
    expect(board.bar(first)).to_have_attribute("aria-valuenow", MID_PROGRESS)

    first.get_by_role("button", name="Cancel").click()
    expect(first).to_have_class(status_class("cancelled"))
    expect(first.locator(".job__status")).to_have_text("Cancelled")
    expect(first.get_by_role("button", name="Cancel")).to_be_hidden()
    cancelled = api.get("/api/jobs", params={"state": "finished"}).json()["items"][0]
    assert cancelled["status"] == "cancelled"
    left = BIG_IMPORT - cancelled["processed"]
    assert left > 0

    youtube.latency_ms = 0
    first.get_by_role("button", name="Retry").click()
    expect(board.cards).to_have_count(2)
    retry = board.card(0)
    expect(retry).not_to_have_attribute("data-job-id", cancelled["id"])
    expect(retry).to_have_class(status_class("completed"))
    expect(board.counts(retry)).to_have_text(f"{left} of {left} videos processed, 0 failed")
    expect(board.card(1)).to_have_attribute("data-job-id", cancelled["id"])
    expect(first).to_have_class(status_class("cancelled"))
    expect(first.get_by_role("button", name="Retry")).to_be_hidden()
    expect(board.summary).to_have_text(showing(1, 50, BIG_IMPORT))
