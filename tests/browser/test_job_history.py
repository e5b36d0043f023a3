"""Outcomes that tell the truth, jobs you can find again, and retry any time, in a real Chromium against
a real server: split bars, the job history after a card has left the live panel, "Retry failed (N)" and
a retry per video row turning failed rows ready live."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from testkit.fake_youtube import FakeYouTube
from tests.browser.dashboard import Dashboard, status_class, video_ids, watch_urls
from tests.browser.harness import Account, AppServer

pytestmark = pytest.mark.browser


def test_a_partly_failed_job_shows_a_split_bar_coloured_by_outcome(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Three ready and two unavailable videos: the bar has a ready segment and a failed segment in
    proportion, in different colours, and the card is titled by its source with its start time."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Split")

    board.import_text(watch_urls([*video_ids(3), "prv00000001", "del00000001"]))

    card = board.pin(board.card())
    expect(card).to_have_class(status_class("completed_with_errors"))
    expect(card.locator(".job__title")).to_have_text("5 pasted links")
    expect(card.locator(".job__list")).to_have_text("into Split")
    expect(card.locator(".job__started")).to_have_text(re.compile(r"^started \d"))
    expect(card.locator(".job__elapsed")).to_have_text(re.compile(r"^took \d+ s$"))
    bar = board.bar(card)
    expect(bar).to_have_attribute("aria-valuetext", "100%: 5 of 5 videos processed, 3 ready, 2 failed")
    ready, failed = bar.locator(".progress__ready"), bar.locator(".progress__failed")
    expect(failed).to_be_visible()
    expect(ready).to_have_attribute("style", re.compile(r"width: 60%"))
    expect(failed).to_have_attribute("style", re.compile(r"width: 40%"))
    colours = [
        part.evaluate("el => getComputedStyle(el).backgroundImage + getComputedStyle(el).backgroundColor")
        for part in (ready, failed)
    ]
    assert colours[0] != colours[1]
    expect(card.get_by_role("button", name="Retry")).to_be_visible()


def test_a_card_that_left_the_live_panel_is_in_the_history_with_its_chart(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Ten minutes after a job finished its card leaves the live panel; the job is in the history with
    its source, counts and outcome, filterable by outcome, and opens to its progress chart."""
    page.clock.install()
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Kept")
    board.import_text(watch_urls(video_ids(7)))
    card = board.pin(board.card())
    expect(card).to_have_class(status_class("completed"))
    history = page.locator("#history-jobs > li")
    expect(history).to_have_count(1)

    page.clock.fast_forward("10:30")

    expect(board.cards).to_have_count(0)
    expect(page.locator("#live-empty")).to_be_visible()
    entry = history.first
    toggle = entry.get_by_role("button")
    expect(toggle).to_contain_text("7 pasted links")
    expect(toggle).to_contain_text("Kept")
    expect(toggle).to_contain_text("7 ready, 0 failed of 7")
    expect(entry.locator(".history__outcome")).to_have_text("Completed")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    chart = entry.get_by_role("img")
    expect(chart).to_have_accessible_name(
        re.compile(r"^Processed over time: 7 of 7 videos in \d+ s, 0 failed")
    )
    assert chart.locator("polyline").count() == 2
    expect(entry.get_by_role("button", name="Retry")).to_have_count(0)

    page.get_by_label("Outcome").select_option("failed")
    expect(history).to_have_count(0)
    expect(page.locator("#history-empty")).to_have_text("No finished job ended so.")
    page.get_by_label("Outcome").select_option("completed")
    expect(history).to_have_count(1)


def test_retry_failed_turns_failed_rows_ready_live(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube, api: httpx.Client
) -> None:
    """Videos failed as temporarily unavailable (a batch throttled through all its retries) are retried
    long after their card: one by its row's Retry, the rest by "Retry failed (N)"; each row turns Ready
    live and the button goes away."""
    youtube.fail_next(5, status=429, retry_after=0)
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Again")
    board.import_text(watch_urls(video_ids(4)))
    expect(board.pin(board.card())).to_have_class(status_class("failed"))
    expect(board.rows.filter(has_text="Failed")).to_have_count(4)
    retry_all = page.get_by_role("button", name="Retry failed (4)")
    expect(retry_all).to_be_visible()

    first = board.rows.first
    first.get_by_role("button", name=re.compile(r"^Retry ")).click()
    expect(first.locator(".badge")).to_have_text("Ready")
    expect(page.get_by_role("button", name="Retry failed (3)")).to_be_visible()

    page.get_by_role("button", name="Retry failed (3)").click()
    expect(board.rows.filter(has_text="Ready")).to_have_count(4)
    expect(page.get_by_role("button", name=re.compile(r"^Retry failed"))).to_be_hidden()
    jobs = api.get("/api/jobs", params={"state": "finished"}).json()["items"]
    assert [(job["kind"], job["source"], job["status"]) for job in jobs] == [
        ("retry", "retry of 3 failed videos", "completed"),
        ("retry", "retry of 1 video", "completed"),
        ("import", "4 pasted links", "failed"),
    ]
