"""The dashboard's own features in a real Chromium: sign in, lists, imports, the table, and a clean page."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from app.imports.parsing import parse_import
from testkit.fake_youtube import FakeYouTube
from tests.browser.dashboard import (
    MID_PROGRESS,
    Dashboard,
    showing,
    status_class,
    video_ids,
    watch_urls,
)
from tests.browser.harness import ROOT, Account, AppServer, PageProblems

pytestmark = pytest.mark.browser

# The committed pictures are refreshed only on request, so a test run leaves the work tree clean.
SCREENSHOTS = ROOT / (
    "docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else "test-artifacts/screenshots"
)
# Records every WebSocket.close() the page makes, in sessionStorage, which outlives the page itself.
RECORD_SOCKET_CLOSES = """
const close = WebSocket.prototype.close;
WebSocket.prototype.close = function (code, reason) {
  const seen = JSON.parse(sessionStorage.getItem("socket-closes") || "[]");
  seen.push({ code, reason, wasOpen: this.readyState === WebSocket.OPEN });
  sessionStorage.setItem("socket-closes", JSON.stringify(seen));
  return close.call(this, code, reason);
};
"""


def accept_dialogs(page: Page, seen: list[str]) -> None:
    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)


def test_the_whole_flow_logs_no_console_errors_and_closes_the_socket_cleanly(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube, problems: PageProblems
) -> None:
    """Sign in by link, import, watch it finish, browse, export: no console error; leaving the page closes
    the socket with 1000 while it is still open."""
    page.add_init_script(RECORD_SOCKET_CLOSES)
    youtube.latency_ms = 200

    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    expect(page).to_have_url(server.url + "/")  # the token left the address bar
    assert page.evaluate("() => localStorage.getItem('sytb.token')") == account.token
    board.create_list("Clean")
    board.import_text(watch_urls(video_ids(10)) + "\nhttps://example.com/not-youtube")
    card = board.card()
    expect(card).to_have_class(status_class("completed"))
    expect(board.rows.filter(has_text="Ready")).to_have_count(10)
    page.get_by_label("Search").fill("vid00000007")
    expect(board.rows).to_have_count(1)
    page.get_by_label("Search").fill("")
    expect(board.rows).to_have_count(10)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename == "Clean.csv"
    assert page.evaluate("() => sessionStorage.getItem('socket-closes')") is None

    page.goto(server.url + "/static/favicon.svg")  # leave the dashboard (same origin: same sessionStorage)

    closes = json.loads(page.evaluate("() => sessionStorage.getItem('socket-closes')") or "[]")
    assert closes == [{"code": 1000, "reason": "page hidden", "wasOpen": True}]
    assert problems.console_errors == []


def test_a_csv_with_bad_lines_shows_each_reason_and_imports_the_good_lines(
    page: Page, server: AppServer, account: Account
) -> None:
    """An uploaded CSV: the good lines are imported, every bad line is listed with its reason, and every
    line is accounted for (a spreadsheet's empty row `;;;` and a blank line too)."""
    content = (
        b"url,note\n"
        b"https://www.youtube.com/watch?v=csv00000001,good\n"
        b";;;\n"
        b"\n"
        b"https://youtu.be/csv00000002,good\n"
        b"https://www.youtube.com/playlist?list=PL1234567890,playlist\n"
        b"https://www.youtube.com/@somechannel,channel\n"
        b"https://vimeo.com/123456,other host\n"
        b"not a link at all,junk\n"
        b"csv00000003,bare id\n"
        b"https://youtu.be/csv00000002,repeated\n"
    )
    expected = parse_import(content, max_rows=100)
    assert len(expected.invalid) == 4  # the file is what this test says it is

    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("From CSV")
    board.import_file("links.csv", content)

    expect(board.import_summary).to_have_text(
        "Accepted 3 videos · 1 duplicate skipped · 4 invalid lines · 2 blank lines · 1 header or comment line"
        " (11 lines in all)."
    )
    expect(board.invalid_lines).to_have_count(4)
    for row, line in zip(board.invalid_lines.all(), expected.invalid, strict=True):
        expect(row.locator("td")).to_have_text([str(line.line), line.value, line.reason])
    expect(board.rows).to_have_count(3)
    expect(board.rows.filter(has_text="Ready")).to_have_count(3)
    expect(board.list_button("From CSV")).to_contain_text("3")


def test_nothing_valid_explains_every_line_and_imports_nothing(
    page: Page, server: AppServer, account: Account
) -> None:
    """A paste with no usable line is refused (422) and still lists why, line by line."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Empty")
    board.open_add_videos()
    page.get_by_label("Or paste links or video ids, one per line").fill("hello\nhttps://vimeo.com/1")
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.locator("#import-result .form-error")).to_have_text(
        "no valid YouTube video found in the import"
    )
    expect(board.invalid_lines).to_have_count(2)
    expect(board.cards).to_have_count(0)
    expect(board.rows).to_have_count(0)


def test_lists_can_be_created_renamed_and_deleted_and_videos_browsed(
    page: Page, server: AppServer, account: Account, api: httpx.Client
) -> None:
    """List management, one video added by URL, paging, the status filter and the CSV export."""
    dialogs: list[str] = []
    accept_dialogs(page, dialogs)
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    expect(page.get_by_role("heading", name="No list yet")).to_be_visible()

    board.create_list("First")
    board.create_list("Second")
    expect(board.list_button("Second")).to_have_attribute("aria-current", "true")

    page.get_by_role("button", name="Rename").click()
    page.get_by_label("List name").fill("Second, renamed")
    page.get_by_role("button", name="Save").click()
    expect(board.list_title).to_have_text("Second, renamed")
    expect(board.list_button("Second, renamed")).to_be_visible()
    assert [item["name"] for item in api.get("/api/lists").json()["items"]] == ["First", "Second, renamed"]

    board.open_add_videos()
    page.get_by_label("Add a video by URL").fill("https://youtu.be/one00000001")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(board.rows).to_have_count(1)
    expect(board.rows.first).to_contain_text("Ready")
    expect(board.rows.first.locator(".cell-duration")).to_have_text(re.compile(r"^\d+:\d{2}(:\d{2})?$"))

    board.import_text(watch_urls([*video_ids(60), "prv00000001"]))
    expect(board.card()).to_have_class(status_class("completed_with_errors"))
    expect(board.summary).to_have_text(showing(1, 50, 62))
    page.get_by_role("button", name="Next").click()
    expect(board.summary).to_have_text(showing(51, 62, 62))
    expect(board.rows).to_have_count(12)
    page.get_by_role("button", name="Previous").click()
    expect(board.rows).to_have_count(50)

    page.get_by_label("Status").select_option("failed")
    expect(board.rows).to_have_count(1)
    expect(board.rows.first).to_contain_text("prv00000001")
    expect(board.summary).to_have_text(showing(1, 1, 1, matching=True))
    page.get_by_label("Status").select_option("")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(exported)))) == 62

    page.get_by_role("button", name="Delete").click()
    expect(board.list_title).to_have_text("First")
    assert dialogs and "Second, renamed" in dialogs[0]
    assert [item["name"] for item in api.get("/api/lists").json()["items"]] == ["First"]


def test_a_bad_token_is_refused_and_sign_out_forgets_the_token(
    page: Page, server: AppServer, account: Account
) -> None:
    """The sign-in form says when a token is not accepted; signing out removes the stored token."""
    page.goto(server.url + "/")
    page.get_by_label("API token").fill("sytb_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text(
        "That token was not accepted: it is unknown or revoked."
    )

    page.get_by_label("API token").fill(account.token)
    page.get_by_label("API token").press("Enter")
    board = Dashboard(page, server.url)
    board.expect_signed_in()
    expect(page.locator("#account-email")).to_have_text(account.email)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => localStorage.getItem('sytb.token')") is None
    page.reload()
    expect(page.get_by_label("API token")).to_be_visible()


def test_screenshots_of_a_running_import_on_a_phone_and_a_desktop(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Screenshots dashboard-{desktop,phone}.png while an import runs (into docs/ with UPDATE_SCREENSHOTS=1), and checks the phone
    layout fits 375 px (no sideways scrolling of the page)."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Watch later")
    board.import_text(watch_urls([*video_ids(12, prefix="abc"), "prv00000042"]))
    expect(board.card()).to_have_class(status_class("completed_with_errors"))
    youtube.latency_ms = 1500
    board.import_text(watch_urls(video_ids(400, prefix="big")))
    running = board.card()
    expect(board.bar(running)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    expect(board.rows.filter(has_text="Ready")).not_to_have_count(0)
    board.close_add_videos()  # as a user watching the import would: the table moves up
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.screenshot(path=str(SCREENSHOTS / "dashboard-desktop.png"))

    page.set_viewport_size({"width": 375, "height": 812})
    expect(running).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"))
    youtube.latency_ms = 0
    expect(board.bar(running)).to_have_attribute("aria-valuenow", "100")


def test_screenshots_of_an_availability_check_and_the_job_history(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Screenshots availability-check.png while a check runs (the videos it found gone already marked
    Unavailable, titles kept) and job-history.png with that check open to its chart (into docs/ with
    UPDATE_SCREENSHOTS=1)."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Watch later")
    ids = video_ids(300, prefix="kee")
    board.import_text(watch_urls([*ids, "prv00000042"]))
    expect(board.card()).to_have_class(status_class("completed_with_errors"))
    youtube.vanish(ids[3::37])
    youtube.make_private(ids[20::53])
    youtube.update(ids[7], title="Renamed by its channel")
    youtube.latency_ms = 1200

    page.set_viewport_size({"width": 1280, "height": 1150})

    page.get_by_role("button", name="Check availability").click()
    expect(board.cards).to_have_count(2)
    check = board.pin(board.card())
    expect(board.bar(check)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    expect(board.rows.filter(has_text="Unavailable")).not_to_have_count(0)
    board.close_add_videos()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "availability-check.png"))

    youtube.latency_ms = 0
    expect(check).to_have_class(status_class("completed"))
    history = page.locator("#history")
    toggle = history.get_by_role("button", name=re.compile(r"^Availability check"))
    toggle.click()
    expect(history.locator(".chart")).to_be_visible()
    expect(history.locator(".history__job")).to_have_count(2)
    history.scroll_into_view_if_needed()
    history.screenshot(path=str(SCREENSHOTS / "job-history.png"))
