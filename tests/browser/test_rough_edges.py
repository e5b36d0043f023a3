"""The dashboard's edges in a real Chromium: errors where they happen, cards while the server is away,
broken thumbnails, the oEmbed hint, buttons that name their job, plurals, and axe over all of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, Route, expect

from testkit.fake_youtube import FakeYouTube
from tests.browser.conftest import APP_FACTORY, server_env
from tests.browser.dashboard import MID_PROGRESS, Dashboard, showing, status_class, video_ids, watch_urls
from tests.browser.harness import Account, AppServer, run_async

pytestmark = pytest.mark.browser

SLOW_BATCH_MS = 1500
"""Per request to the fake YouTube (50 videos a request): a 400-video job takes 8 of these."""


def assert_no_axe_violations(page: Page, where: str) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, f"{where}:\n{results.generate_report()}"


def test_an_add_video_error_shows_by_its_form_and_is_announced(
    page: Page, server: AppServer, account: Account
) -> None:
    """A refused URL is explained under the "Add a video" field, in an alert that describes the field,
    not in a banner at the top of the page; the next good URL clears it."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Errors")
    board.open_add_videos()
    field = page.get_by_label("Add a video by URL")
    form = page.locator("#add-video-form")

    field.fill("https://vimeo.com/123456")
    page.get_by_role("button", name="Add", exact=True).click()

    alert = form.get_by_role("alert")
    expect(alert).to_have_text(re.compile(r"not a YouTube link \(host vimeo\.com\)"))
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(r"not a YouTube link"))
    expect(field).to_be_focused()
    expect(alert).to_be_in_viewport()
    expect(page.get_by_role("alert").filter(has_text="vimeo")).to_have_count(1)  # nowhere else

    field.fill("https://youtu.be/err00000001")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(board.rows).to_have_count(1)
    expect(alert).to_have_text("")
    expect(field).not_to_have_attribute("aria-invalid", "true")


def test_while_the_server_is_away_cards_show_their_state_as_of_then(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Server down mid-import: the running card says its state is as of the moment the connection
    dropped, shows no ETA, and its Cancel (named after the job) is disabled with that reason; once the
    server is back the card is live again and the job completes."""
    youtube.latency_ms = SLOW_BATCH_MS
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Away")
    board.import_text(watch_urls(video_ids(400, prefix="awy")))
    card = board.pin(board.card())
    expect(board.bar(card)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    cancel = card.get_by_role("button", name="Cancel 400 pasted links into Away")
    expect(cancel).to_be_enabled()
    expect(card.locator(".job__eta")).to_be_visible()

    server.stop()

    expect(board.connection_banner).to_have_text("Reconnecting…")
    note = card.locator(".job__offline")
    expect(note).to_have_text(
        re.compile(r"^Not connected: this is the state at .+\. Cancel and Retry come back")
    )
    expect(cancel).to_be_disabled()
    expect(cancel).to_have_accessible_description(
        re.compile("Cancel and Retry come back with the connection")
    )
    expect(card.locator(".job__eta")).to_be_hidden()

    youtube.latency_ms = 0
    server.start()

    expect(board.connection_banner).to_have_text("")
    expect(note).to_be_hidden()
    expect(card).to_have_class(status_class("completed"))
    expect(board.counts(card)).to_have_text("400 of 400 videos processed, 0 failed")


@pytest.fixture
def broken_thumbnail(page: Page) -> str:
    """One video whose thumbnail answers 404 (the others get the usual picture)."""
    video_id = "brk00000001"

    def refuse(route: Route) -> None:
        route.fulfill(status=404, body=b"")

    page.route(f"https://i.ytimg.com/vi/{video_id}/**", refuse)
    return video_id


def test_a_thumbnail_that_fails_shows_a_placeholder_and_retry_names_its_job(
    page: Page, server: AppServer, account: Account, broken_thumbnail: str
) -> None:
    """A thumbnail that does not load is replaced by the placeholder, never a broken image; with the
    Data API there is no hint about missing durations; Retry says which job it retries."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Pictures")
    board.import_text(watch_urls([broken_thumbnail, "ok000000001", "prv00000001"]))
    expect(board.card()).to_have_class(status_class("completed_with_errors"))
    expect(board.rows.filter(has_text="Ready")).to_have_count(2)

    broken = board.rows.filter(has_text=broken_thumbnail)
    expect(broken.locator(".cell-thumb .thumb-placeholder")).to_have_count(1)
    expect(broken.locator(".cell-thumb img")).to_have_count(0)
    fine = board.rows.filter(has_text="ok000000001")
    expect(fine.locator(".cell-thumb img")).to_have_js_property("naturalWidth", 320)
    expect(page.locator("#videos-hint")).to_be_hidden()
    expect(board.card().get_by_role("button", name="Retry 3 pasted links into Pictures")).to_be_visible()


@pytest.fixture
def oembed_server(browser_database: str, youtube: FakeYouTube, tmp_path: Path) -> Iterator[AppServer]:
    """The app without a YouTube API key: metadata comes from oEmbed (no duration, no date)."""
    env = server_env(
        DATABASE_URL=browser_database,
        RUN_WORKERS_IN_WEB="true",
        YOUTUBE_OEMBED_URL=youtube.oembed_url,
        PROGRESS_INTERVAL_MS="100",
    )
    with AppServer(factory=APP_FACTORY, env=env, log_path=tmp_path / "server.log") as app_server:
        yield app_server


def test_without_an_api_key_the_table_says_why_durations_are_empty(
    page: Page, oembed_server: AppServer, account: Account
) -> None:
    """In oEmbed mode the table explains the empty Duration and Published columns and how to fill them."""
    board = Dashboard.sign_in_with_link(page, oembed_server.url, account.token)
    board.create_list("No key")
    board.import_text(watch_urls(video_ids(3, prefix="oem")))
    expect(board.rows.filter(has_text="Ready")).to_have_count(3)
    expect(board.rows.first.locator(".cell-duration")).to_have_text("—")
    hint = page.locator("#videos-hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("without a YouTube API key")
    expect(hint).to_contain_text("YOUTUBE_API_KEY")


def test_one_video_reads_as_one_video_everywhere(page: Page, server: AppServer, account: Account) -> None:
    """Counts of one are singular: the import summary, the card, the table's summary, the list's count."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Single")
    board.import_text(watch_urls(["one00000001"]))

    expect(board.import_summary).to_have_text(
        "Accepted 1 video · 0 duplicates skipped · 0 invalid lines (1 line in all)."
    )
    card = board.card()
    expect(card).to_have_class(status_class("completed"))
    expect(board.counts(card)).to_have_text("1 of 1 video processed, 0 failed")
    expect(board.bar(card)).to_have_attribute(
        "aria-valuetext", "100%: 1 of 1 video processed, 1 ready, 0 failed"
    )
    expect(board.summary).to_have_text(showing(1, 1, 1))
    expect(board.list_button("Single")).to_have_accessible_name(re.compile(r"^Single\s*1 video$"))


def test_axe_finds_no_violation_on_sign_in_on_a_busy_dashboard_and_offline(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """axe-core reports 0 violations on the sign-in page, on a dashboard with a running and a finished job,
    an invalid-lines table and a field in error, and on the same page while the server is away."""
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_no_axe_violations(page, "sign-in page")

    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Audit")
    board.import_text(watch_urls(["aud00000001", "prv00000002"]) + "\nhttps://vimeo.com/1")
    expect(board.card()).to_have_class(status_class("completed_with_errors"))
    youtube.latency_ms = SLOW_BATCH_MS
    board.import_text(watch_urls(video_ids(400, prefix="adt")))
    expect(board.bar(board.card())).to_have_attribute("aria-valuenow", MID_PROGRESS)
    page.get_by_label("Add a video by URL").fill("not a link")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-video-form").get_by_role("alert")).not_to_have_text("")
    assert_no_axe_violations(page, "busy dashboard")

    server.stop()
    expect(board.card().locator(".job__offline")).to_be_visible()
    assert_no_axe_violations(page, "dashboard while the server is away")
    youtube.latency_ms = 0
    server.start()


def test_a_sign_in_link_pasted_into_an_open_tab_signs_in(
    page: Page, server: AppServer, account: Account
) -> None:
    """On the sign-in page, opening a new link changes only the address's #part: the page signs in anyway."""
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#signin")).to_contain_text("bookmarks signin-link")
    page.goto(f"{server.url}/#token={account.token}")  # same page, new hash: no reload
    Dashboard(page, server.url).expect_signed_in()
    expect(page).to_have_url(server.url + "/")


def test_a_failed_cancel_is_explained_in_its_card(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """When Cancel fails, the reason appears in that job's card, announced, and Cancel can be tried again."""
    youtube.latency_ms = SLOW_BATCH_MS
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Stubborn")
    board.import_text(watch_urls(video_ids(400, prefix="stb")))
    card = board.pin(board.card())
    expect(board.bar(card)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    page.route(
        "**/api/jobs/*/cancel",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body=b'{"status_code": 503, "detail": "try later"}'
        ),
    )

    cancel = card.get_by_role("button", name="Cancel 400 pasted links into Stubborn")
    cancel.click()

    expect(card.get_by_role("alert")).to_have_text("Cancel failed: try later")
    expect(cancel).to_be_enabled()
    youtube.latency_ms = 0
    expect(card).to_have_class(status_class("completed"))


def test_a_revoked_token_does_not_take_a_newer_stored_one_with_it(
    page: Page, server: AppServer, account: Account, browser_database: str
) -> None:
    """A tab whose token is revoked (socket closed 4401) signs out, but leaves the stored token alone when
    another tab has stored a newer one since: the next page load signs in with that."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Mine")
    page.evaluate("() => localStorage.setItem('sytb.token', 'sytb_signed-in-in-another-tab')")

    async def revoke() -> None:
        conn = await asyncpg.connect(browser_database)
        try:
            await conn.execute("UPDATE api_tokens SET revoked_at = now()")
        finally:
            await conn.close()

    run_async(revoke())

    expect(page.locator("#signin-error")).to_have_text(re.compile(r"no longer valid"))
    assert page.evaluate("() => localStorage.getItem('sytb.token')") == "sytb_signed-in-in-another-tab"
    assert page.evaluate("() => localStorage.getItem('sytb.list')") is not None
