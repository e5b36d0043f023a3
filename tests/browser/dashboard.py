"""The dashboard as the tests see it: what a user does (by label and role) and where things show up."""

from __future__ import annotations

import re
from typing import Final

from playwright.sync_api import FilePayload, Locator, Page, expect

MID_PROGRESS: Final = re.compile(r"^[1-9]\d?(\.\d+)?$")
"""aria-valuenow strictly between 0 and 100: the job has started and is not done."""


def video_ids(count: int, prefix: str = "vid", start: int = 1) -> list[str]:
    """Syntactically valid ids (11 characters); the fake YouTube knows them all, except `prv`/`del`."""
    assert len(prefix) == 3
    return [f"{prefix}{n:08d}" for n in range(start, start + count)]


def watch_urls(ids: list[str]) -> str:
    return "\n".join(f"https://www.youtube.com/watch?v={video_id}" for video_id in ids)


def showing(first: int, last: int, total: int, *, matching: bool = False) -> str:
    """The table's summary line, e.g. "Showing 1-50 of 62 videos" (with an en dash; "1 video")."""
    noun = "video" if total == 1 else "videos"
    return f"Showing {first}\N{EN DASH}{last} of {total} {'matching ' if matching else ''}{noun}"


def status_class(status: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s)job--{status}(\s|$)")


class Dashboard:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    @classmethod
    def sign_in_with_link(cls, page: Page, base_url: str, token: str) -> Dashboard:
        """Opens the sign-in link `/#token=...` and waits until the user is signed in."""
        board = cls(page, base_url)
        page.goto(f"{base_url}/#token={token}")
        board.expect_signed_in()
        return board

    @classmethod
    def open(cls, page: Page, base_url: str) -> Dashboard:
        """Opens the dashboard in a tab of a browser that has signed in before (the token is stored)."""
        board = cls(page, base_url)
        page.goto(base_url + "/")
        board.expect_signed_in()
        return board

    def expect_signed_in(self) -> None:
        expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(self.page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
        expect(self.page.locator("#workspace")).to_have_attribute("aria-busy", "false")  # lists loaded

    # -- lists --

    def create_list(self, name: str) -> None:
        self.page.get_by_label("New list").fill(name)
        self.page.get_by_role("button", name="Create").click()
        expect(self.list_title).to_have_text(name)

    def list_button(self, name: str) -> Locator:
        return self.page.locator("#lists").get_by_role("button", name=re.compile(rf"^{re.escape(name)}\b"))

    @property
    def list_title(self) -> Locator:
        return self.page.locator("#list-title")

    # -- adding videos --

    def open_add_videos(self) -> None:
        """The forms sit in an "Add videos" disclosure, open by default only for an empty list."""
        add_videos = self.page.locator("#add-videos")
        if not add_videos.evaluate("details => details.open"):
            add_videos.get_by_text("Add videos", exact=True).click()
        expect(self.page.get_by_label("Add a video by URL")).to_be_visible()

    def close_add_videos(self) -> None:
        add_videos = self.page.locator("#add-videos")
        if add_videos.evaluate("details => details.open"):
            add_videos.get_by_text("Add videos", exact=True).click()
        expect(self.page.get_by_label("Add a video by URL")).to_be_hidden()

    def import_text(self, text: str) -> None:
        self.open_add_videos()
        self.page.get_by_label("Or paste links or video ids, one per line").fill(text)
        self.page.get_by_role("button", name="Import", exact=True).click()
        expect(self.import_summary).to_be_visible()

    def import_file(self, name: str, content: bytes) -> None:
        self.open_add_videos()
        upload: FilePayload = {"name": name, "mimeType": "text/csv", "buffer": content}
        file_input = self.page.get_by_label("Import a CSV file, a Google Takeout export or a list of links")
        file_input.set_input_files(files=[upload])
        self.page.get_by_role("button", name="Import", exact=True).click()
        expect(self.import_summary).to_be_visible()

    @property
    def import_summary(self) -> Locator:
        return self.page.locator("#import-result .import-summary")

    @property
    def invalid_lines(self) -> Locator:
        return self.page.locator("#import-result table.invalid-lines tbody tr")

    # -- the live panel --

    @property
    def cards(self) -> Locator:
        return self.page.locator("#jobs > li.job")

    def card(self, index: int = 0) -> Locator:
        """Cards are newest first: 0 is the latest job (whichever that is when the locator is used)."""
        return self.cards.nth(index)

    def job(self, job_id: str) -> Locator:
        """One job's card, whatever comes after it."""
        return self.page.locator(f'#jobs > li.job[data-job-id="{job_id}"]')

    def pin(self, card: Locator) -> Locator:
        """The card `card` points to now, still found when newer cards push it down."""
        job_id = card.get_attribute("data-job-id")
        assert job_id is not None
        return self.job(job_id)

    @staticmethod
    def bar(card: Locator) -> Locator:
        return card.get_by_role("progressbar")

    @staticmethod
    def counts(card: Locator) -> Locator:
        return card.locator(".job__counts")

    @staticmethod
    def processed(card: Locator) -> int:
        match = re.match(r"(\d+) of", card.locator(".job__counts").inner_text())
        assert match is not None
        return int(match.group(1))

    @property
    def connection_banner(self) -> Locator:
        return self.page.locator("#connection")

    # -- the video table --

    @property
    def rows(self) -> Locator:
        return self.page.locator("#video-rows > tr")

    @property
    def summary(self) -> Locator:
        return self.page.locator("#videos-summary")
