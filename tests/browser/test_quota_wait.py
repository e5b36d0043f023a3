"""A job waiting for the daily YouTube quota, as the dashboard shows it: its own status, when it resumes,
and a Cancel that ends it at once (no worker holds it)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import Dashboard, status_class, video_ids, watch_urls
from tests.browser.harness import Account, AppServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server_settings() -> dict[str, str]:
    """A budget of one Data API call a day: the second batch of any job waits for tomorrow."""
    return {"YOUTUBE_DAILY_QUOTA": "1"}


def test_a_job_waiting_for_the_quota_says_until_when_and_cancels_at_once(
    page: Page, server: AppServer, account: Account
) -> None:
    """After its first batch the job is "Waiting for quota", says when it resumes and why, shows no ETA;
    Cancel ends it there and then."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Budget")

    board.import_text(watch_urls(video_ids(120)))

    card = board.pin(board.card())
    expect(card).to_have_class(status_class("waiting"))
    expect(card.locator(".job__status")).to_have_text("Waiting for quota")
    expect(card.locator(".job__next")).to_have_text(
        re.compile(r"^Resumes when the quota resets at .+ \(in \d")
    )
    expect(card.locator(".job__message")).to_contain_text("midnight Pacific time")
    expect(card.locator(".job__eta")).to_be_hidden()
    expect(board.counts(card)).to_have_text("50 of 120 videos processed, 0 failed")
    expect(page).to_have_title("(1) Smart YouTube Bookmarks")

    card.get_by_role("button", name=re.compile(r"^Cancel")).click()

    expect(card).to_have_class(status_class("cancelled"))
    expect(card.locator(".job__message")).to_have_text(
        "Cancelled while waiting for the YouTube quota (50 of 120 done)"
    )
    expect(page).to_have_title("Smart YouTube Bookmarks")
