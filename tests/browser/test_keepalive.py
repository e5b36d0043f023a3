"""Keeping lists alive in a real Chromium against a real server: Check availability and its schedule, the
Unavailable badge and filter, a whole Takeout upload drawn under its upload, pausing the live panel, and
the running-job count in the title and favicon."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from testkit.fake_youtube import FakeYouTube
from tests.browser.dashboard import MID_PROGRESS, Dashboard, status_class, video_ids, watch_urls
from tests.browser.harness import ROOT, Account, AppServer

pytestmark = pytest.mark.browser

TAKEOUT = ROOT / "tests" / "data" / "takeout" / "takeout_new_layout.zip"


def test_check_availability_shows_what_is_gone_with_its_metadata_and_the_export_says_so(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """Videos that vanished turn "Unavailable" live, keeping their title and saying since when; the card
    counts what the check found; the Unavailable filter lists exactly them; the CSV export's status
    column says `unavailable`."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Keep")
    ids = video_ids(30)
    board.import_text(watch_urls(ids))
    expect(board.card()).to_have_class(status_class("completed"))
    youtube.vanish(ids[:2])
    youtube.make_private(ids[2:3])
    youtube.update(ids[5], title="A new title")

    page.get_by_role("button", name="Check availability").click()

    expect(board.cards).to_have_count(2)
    card = board.pin(board.card())
    expect(card.locator(".job__title")).to_have_text("Availability check")
    expect(card.locator(".job__list")).to_have_text("of Keep")
    expect(card).to_have_class(status_class("completed"))
    expect(board.counts(card)).to_have_text("30 of 30 videos checked: 3 gone, 1 changed")
    expect(card.locator(".job__message")).to_have_text("Checked 30 videos: 3 gone, 1 changed")
    gone = board.rows.filter(has_text="Unavailable")
    expect(gone).to_have_count(3)
    expect(gone.first).to_contain_text(f"Video {ids[0]}")  # the title it had
    expect(gone.first.locator(".video-error")).to_have_text(re.compile(r"^Gone from YouTube since .+: video"))
    expect(board.rows.filter(has_text="A new title")).to_have_count(1)

    page.get_by_label("Status").select_option("unavailable")
    expect(board.rows).to_have_count(3)
    expect(board.summary).to_have_text("Showing 1\N{EN DASH}3 of 3 matching videos")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(row["youtube_id"] for row in rows if row["status"] == "unavailable") == sorted(ids[:3])


def test_a_schedule_is_kept_and_says_when_the_next_check_is(
    page: Page, server: AppServer, account: Account
) -> None:
    """Choosing "Every week" saves the schedule: the next check's date shows, and stays after a reload."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Weekly")
    schedule = page.get_by_label("Check availability automatically")
    expect(schedule).to_have_value("off")

    schedule.select_option("weekly")

    expect(page.locator("#next-check")).to_have_text(re.compile(r"^Next check \w"))
    page.reload()
    board.expect_signed_in()
    expect(schedule).to_have_value("weekly")
    expect(page.locator("#next-check")).to_have_text(re.compile(r"^Next check \w"))


def test_a_takeout_upload_makes_a_list_per_playlist_drawn_under_the_upload(
    page: Page, server: AppServer, account: Account
) -> None:
    """Uploading a Takeout archive says which lists it filled, adds them to the lists, and the live panel
    shows its four jobs together under the archive's name, each card titled by its list."""
    Dashboard.sign_in_with_link(page, server.url, account.token)
    upload: FilePayload = {
        "name": TAKEOUT.name,
        "mimeType": "application/zip",
        "buffer": TAKEOUT.read_bytes(),
    }

    page.get_by_label("Import a Google Takeout").set_input_files(files=[upload])
    page.get_by_role("button", name="Import Takeout").click()

    expect(page.locator("#takeout-result .import-summary")).to_have_text(
        "4 lists from takeout_new_layout.zip; 1 empty playlist skipped."
    )
    names = ["Watch later", "Liked videos", "Road trip", "Learning / Practice"]
    expect(page.locator("#lists .list-button__name")).to_have_text(names)
    group = page.locator("#jobs > li.job-group")
    expect(group).to_have_count(1)
    expect(group.locator(".job-group__title")).to_have_text("Takeout_new_layout.zip")
    expect(group.locator(".job__title")).to_have_text(names)
    expect(group.locator("li.job.job--completed")).to_have_count(4)
    expect(group.locator(".job-group__summary")).to_have_text("4 lists, all done: 13 of 13 videos processed")


def test_pausing_keeps_the_panel_still_and_the_title_counts_running_jobs(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube, api: httpx.Client
) -> None:
    """While paused a running card does not move though its job does, and the note counts what is not
    shown; resuming shows the latest at once. Meanwhile the title and favicon count the running job."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Still")
    youtube.latency_ms = 400
    board.import_text(watch_urls(video_ids(600)))
    card = board.pin(board.card())
    expect(board.bar(card)).to_have_attribute("aria-valuenow", MID_PROGRESS)
    expect(page).to_have_title("(1) Smart YouTube Bookmarks")
    assert page.evaluate("() => document.querySelector('link[rel=icon]').href").startswith(
        "data:image/svg+xml,"
    )

    page.get_by_role("button", name="Pause live updates").click()
    frozen = board.processed(card)
    job_id = card.get_attribute("data-job-id")
    expect(page.locator("#live-paused")).to_have_text(
        re.compile(r"^Live updates paused: \d+ updates? not shown yet\.$")
    )

    def moved_on() -> bool:
        processed: int = api.get(f"/api/jobs/{job_id}").json()["processed"]
        return processed >= frozen + 100

    for _ in range(200):  # polled with a deadline: the job moves on in the server, the card must not
        if moved_on():
            break
        page.wait_for_timeout(100)
    assert moved_on(), "the job kept going"
    assert board.processed(card) == frozen

    page.get_by_role("button", name="Resume live updates").click()
    expect(page.locator("#live-paused")).to_be_hidden()
    expect(board.counts(card)).not_to_have_text(re.compile(rf"^{frozen} of"))
    youtube.latency_ms = 0
    expect(card).to_have_class(status_class("completed"))
    expect(page).to_have_title("Smart YouTube Bookmarks")
    assert (
        page.evaluate("() => document.querySelector('link[rel=icon]').getAttribute('href')")
        == "/static/favicon.svg"
    )


def test_a_job_in_a_list_made_elsewhere_stays_out_of_a_paused_panel(
    page: Page, server: AppServer, account: Account, api: httpx.Client
) -> None:
    """While paused, an import into a list made in another tab adds the list to the lists (its name is
    looked up) but no card appears until the panel is resumed."""
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Here")
    board.import_text(watch_urls(video_ids(2)))
    expect(board.card()).to_have_class(status_class("completed"))
    page.get_by_role("button", name="Pause live updates").click()

    made = api.post("/api/lists", json={"name": "Made elsewhere"})
    assert made.status_code == 201, made.text
    imported = api.post(
        f"/api/lists/{made.json()['id']}/imports",
        content=watch_urls(video_ids(2, start=10)),
        headers={"Content-Type": "text/plain"},
    )
    assert imported.status_code == 202, imported.text

    expect(board.list_button("Made elsewhere")).to_be_visible()  # the event came, its list was looked up
    expect(page.locator("#live-paused")).to_have_text(re.compile(r"updates? not shown yet"))
    expect(board.cards).to_have_count(1)

    page.get_by_role("button", name="Resume live updates").click()
    expect(board.cards).to_have_count(2)
    expect(board.card().locator(".job__list")).to_have_text("into Made elsewhere")


def test_a_job_that_finished_and_aged_out_during_a_pause_reaches_the_history(
    page: Page, server: AppServer, account: Account, youtube: FakeYouTube
) -> None:
    """A job that ends while the panel is paused, and is older than ten minutes when it is resumed, is not
    lost: its card is gone (as any) and the history shows it."""
    page.clock.install()
    board = Dashboard.sign_in_with_link(page, server.url, account.token)
    board.create_list("Paused")
    youtube.latency_ms = 300
    board.import_text(watch_urls(video_ids(200)))
    expect(page).to_have_title("(1) Smart YouTube Bookmarks")
    page.get_by_role("button", name="Pause live updates").click()
    youtube.latency_ms = 0
    expect(page).to_have_title("Smart YouTube Bookmarks")  # kept current while paused: the job ended
    history = page.locator("#history-jobs > li")
    expect(history).to_have_count(0)  # reloaded on resuming, not while paused

    page.clock.fast_forward("10:30")
    page.get_by_role("button", name="Resume live updates").click()

    expect(board.cards).to_have_count(0)
    expect(history).to_have_count(1)
    expect(history.first.get_by_role("button")).to_contain_text("200 ready, 0 failed of 200")
