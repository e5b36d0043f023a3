"""One socket per browser (app/dashboard/static/tabs.js): tabs of one user elect a leader that alone holds
the WebSocket and relays its frames; when it closes another takes over and resumes with `after`. And the
notification a hidden dashboard shows when a job ends."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from testkit.fake_youtube import FakeYouTube
from tests.browser.dashboard import Dashboard, video_ids
from tests.browser.harness import Account, AppServer

pytestmark = pytest.mark.browser


# Every frame a tab's LiveClient applies, as it announces it (`sytb:live`), in order.
RECORD_LIVE = """
window.__live = [];
window.addEventListener("sytb:live", (event) => window.__live.push(event.detail));
"""
# Notifications the page makes, recorded (and still shown), and a switch the test flips to emulate the
# tab being in the background (headless Chromium reports every page as visible).
RECORD_NOTIFICATIONS = """
window.__notifications = [];
window.__hidden = false;
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options = {}) {
    super(title, options);
    window.__notifications.push({ title, body: options.body, tag: options.tag });
  }
};
Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden, configurable: true });
Object.defineProperty(Document.prototype, "visibilityState", {
  get: () => (window.__hidden ? "hidden" : "visible"),
  configurable: true,
});
"""


def role(page: Page) -> str:
    value: str = page.evaluate("() => document.documentElement.dataset.liveRole ?? ''")
    return value


def live_status(page: Page) -> str | None:
    value: str | None = page.evaluate("() => document.documentElement.dataset.liveStatus ?? null")
    return value


def applied(page: Page) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = page.evaluate("() => window.__live")
    return frames


def subscribers(server: AppServer) -> int:
    count: int = httpx.get(server.url + "/api/health", timeout=10).json()["hub"]["subscribers"]
    return count


def wait_for(condition: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def open_tabs(context: BrowserContext, server: AppServer, account: Account, count: int) -> list[Page]:
    context.add_init_script(RECORD_LIVE)
    first = context.new_page()
    Dashboard.sign_in_with_link(first, server.url, account.token)
    pages = [first]
    for _ in range(count - 1):
        page = context.new_page()
        Dashboard.open(page, server.url)
        pages.append(page)
    return pages


def all_seqs(api: httpx.Client) -> list[int]:
    seqs: list[int] = []
    after: int | None = 0
    while after is not None:
        page = api.get("/api/progress", params={"after_seq": after, "limit": 1000}).json()
        seqs += [event["seq"] for event in page["events"]]
        after = page["next_after_seq"]
    return seqs


def assert_gapless(frames: list[dict[str, Any]], seqs: list[int], tab: str) -> None:
    """Snapshots only before the first event; then every event once, in order, ending at the last seq."""
    first_event = next(index for index, frame in enumerate(frames) if frame["type"] == "event")
    assert all(frame["type"] == "snapshot" for frame in frames[:first_event]), (tab, frames)
    events = [frame["seq"] for frame in frames[first_event:]]
    assert all(frame["type"] == "event" for frame in frames[first_event:]), (tab, frames)
    assert events == seqs, f"{tab}: {events} != {seqs}"


def test_three_tabs_share_one_socket_and_the_next_takes_over_when_the_leader_closes(
    context: BrowserContext, server: AppServer, account: Account, api: httpx.Client, youtube: FakeYouTube
) -> None:
    """With three tabs open the server sees one socket; closing the leader's tab, another takes the socket
    over, and both remaining tabs apply every event of a job running across the handover exactly once, in
    order (the new leader resumed with `after`). The handover time is printed, not asserted (speed is for
    measurements, not tests): 164 to 604 ms in the runs in docs/reliability.md, against the 2 s asked."""
    pages = open_tabs(context, server, account, 3)
    wait_for(lambda: sorted(map(role, pages)) == ["follower", "follower", "leader"], "one leader")
    wait_for(lambda: all(live_status(page) == "online" for page in pages), "every tab to show online")
    wait_for(lambda: all(applied(page) for page in pages), "every tab to have its first state")
    assert subscribers(server) == 1

    youtube.latency_ms = 250
    list_id = api.post("/api/lists", json={"name": "Across tabs"}).json()["id"]
    answer = api.post(
        f"/api/lists/{list_id}/imports",
        content="\n".join(video_ids(1000)).encode(),
        headers={"Content-Type": "text/plain"},
    ).json()
    job_id = answer["job"]["id"]
    leader = next(page for page in pages if role(page) == "leader")
    others = [page for page in pages if page is not leader]
    wait_for(lambda: all(sum(f["type"] == "event" for f in applied(page)) >= 3 for page in others), "events")

    closed_at = time.monotonic()
    leader.close()
    wait_for(
        lambda: any(role(page) == "leader" and live_status(page) == "online" for page in others),
        "another tab to hold the socket",
    )
    handover_s = time.monotonic() - closed_at
    print(f"handover: {handover_s * 1000:.0f} ms from closing the leader's tab to the new leader online")
    assert sorted(map(role, others)) == ["follower", "leader"]
    wait_for(lambda: subscribers(server) == 1, "one socket again")

    youtube.latency_ms = 0
    wait_for(lambda: api.get(f"/api/jobs/{job_id}").json()["status"] == "completed", "the job", 60)
    seqs = all_seqs(api)
    wait_for(lambda: all(applied(page)[-1]["seq"] == seqs[-1] for page in others), "the last event")
    for index, page in enumerate(others):
        assert_gapless(applied(page), seqs, f"tab {index}")
        expect(page.locator(f'#jobs > li.job[data-job-id="{job_id}"]')).to_have_class(
            "job job--completed", timeout=5000
        )
    assert subscribers(server) == 1


def test_a_job_that_ends_while_the_dashboard_is_hidden_notifies_once(
    context: BrowserContext, server: AppServer, account: Account, api: httpx.Client
) -> None:
    """Opted in (the browser grants the permission), a job that ends while the tab is hidden shows one
    notification with its outcome and counts; one that ends while it is in view shows none."""
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(RECORD_NOTIFICATIONS)
    page = context.new_page()
    Dashboard.sign_in_with_link(page, server.url, account.token)
    page.get_by_role("button", name="Notify me when a job ends").click()
    expect(page.get_by_role("button", name="Notifications on")).to_have_attribute("aria-pressed", "true")
    list_id = api.post("/api/lists", json={"name": "Notified"}).json()["id"]

    def import_and_wait(ids: list[str]) -> str:
        job: dict[str, Any] = api.post(
            f"/api/lists/{list_id}/imports",
            content="\n".join(ids).encode(),
            headers={"Content-Type": "text/plain"},
        ).json()["job"]
        expect(page.locator(f'#jobs > li.job[data-job-id="{job["id"]}"]')).to_have_class(
            "job job--completed_with_errors"
        )
        return str(job["id"])

    import_and_wait([*video_ids(4), "prv00000001"])
    assert page.evaluate("() => window.__notifications") == [], "a tab in view is not notified"

    page.evaluate("() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); }")
    job_id = import_and_wait([*video_ids(3, start=10), "prv00000002"])

    notifications = page.evaluate("() => window.__notifications")
    assert notifications == [
        {
            "title": "4 pasted links (Notified): Completed with errors",
            "body": "3 ready, 1 failed of 4 videos",
            "tag": job_id,
        }
    ]
