"""A fake YouTube (Data API v3 `videos.list` and oEmbed) over real HTTP, speaking the real wire format.

In a test:

    with FakeYouTube(latency_ms=0) as yt:
        client = YouTubeClient(http, api_key=yt.api_key, api_url=yt.api_url, oembed_url=yt.oembed_url)
        yt.fail_next(2, status=429, retry_after=1)

From a shell or another process:

    python -m testkit.fake_youtube --port 8765 --latency-ms 100
    curl -X POST localhost:8765/_control -d '{"fail_next": {"n": 3, "status": 503}}'
    curl -X POST localhost:8765/_control -d '{"vanish": ["vid00000001"], "update": {"id": "vid00000002", "title": "New"}}'
    curl localhost:8765/_stats

The catalog is deterministic: every syntactically valid 11-character id exists, with metadata derived
from a hash of the id, except ids starting with `prv` (private) and `del` (deleted). Ids starting with
`liv` are live streams (duration `P0D`) and ids starting with `hid` hide their view count.

The catalog can change while a test runs, as YouTube's does between two availability checks: `vanish`
(deleted: absent from `items`, oEmbed 404), `make_private` (absent from `items`, as the API shows a private
video to anyone but its owner; oEmbed 401), `block` (listed with `status.uploadStatus` `rejected` and a
`rejectionReason`; oEmbed 404), `restore` (back as the catalog says), and `update` (another title, channel
name, view count or thumbnail). These changes outlive `reset()`, which clears only injected failures.

Hostile ids (HOSTILE_KINDS, prefixes starting with `z`) get the same item poisoned in one way: control
characters, over-long texts, numbers past the database's columns, a date that cannot be represented, an
over-long channel or video id, an item that does not decode (a lone surrogate escape, so msgspec refuses
the whole answer), thumbnails off YouTube's image hosts, or on its host with a bad port. `expected()` says what a correct client makes
of them; `expected_failure()` which ones it must fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY: Final = "test-key"
API_PATH: Final = "/youtube/v3"
OEMBED_PATH: Final = "/oembed"
API_BATCH_LIMIT: Final = 50

_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
_FIFTEEN_YEARS_S: Final = 15 * 365 * 86_400
_THUMBNAIL_SIZES: Final = (
    ("default", "default.jpg", 120, 90),
    ("medium", "mqdefault.jpg", 320, 180),
    ("high", "hqdefault.jpg", 480, 360),
    ("standard", "sddefault.jpg", 640, 480),
    ("maxres", "maxresdefault.jpg", 1280, 720),
)
# Google's reason for each status the failure injection can produce on the Data API.
_DEFAULT_ERROR_REASONS: Final = {
    429: "rateLimitExceeded",
    403: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}


HOSTILE_KINDS: Final = {
    "zcc": "control characters (NUL, BEL, ESC) in the title and channel name",
    "zln": "a 5,000-character title and channel name",
    "zbg": "a view count past BIGINT and a duration past INTEGER",
    "zdt": "a publish date that leaves datetime's range in UTC",
    "zci": "a 302-character channel id",
    "zid": "the item's id is 311 characters long (not the id asked for)",
    "zsu": "a lone surrogate escape in the title: the answer does not decode as a whole",
    "zth": "thumbnails over http, on other hosts and as javascript: URLs",
    "zpt": "thumbnails on YouTube's host with a port that is not a number, out of range, or 0",
}
"""Prefix → the poison in that id's `videos.list` item (oEmbed: the title and thumbnail ones)."""
_LONG_TEXT: Final = 5000
_BAD_PORTS: Final = (
    "https://i.ytimg.com:abc/vi/x.jpg",
    "https://i.ytimg.com:99999/vi/x.jpg",
    "https://i.ytimg.com:0/vi/x.jpg",
)
HOLD_MAX_S: Final = 30.0
"""The longest a held request waits for `release()` (a test that forgot it still ends)."""

# ---- the deterministic catalog ----


def is_private(video_id: str) -> bool:
    return video_id.startswith("prv")


def is_deleted(video_id: str) -> bool:
    return video_id.startswith("del")


def is_listed(video_id: str) -> bool:
    """Whether the Data API returns the id in `items` (oEmbed answers 200 for exactly these)."""
    return bool(_VIDEO_ID.fullmatch(video_id)) and not is_private(video_id) and not is_deleted(video_id)


def _digest(video_id: str) -> int:
    return int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big")


def _duration_s(video_id: str) -> int:
    if video_id.startswith("liv"):
        return 0
    digest = _digest(video_id)
    # Mostly minutes, some hours, a few over a day so the `D` designator is exercised.
    return [digest % 600 + 1, digest % 10_800 + 1, digest % 200_000 + 86_400][digest % 3]


def format_iso8601_duration(seconds: int) -> str:
    """YouTube's style: zero components omitted, `P0D` for zero."""
    if seconds == 0:
        return "P0D"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    date_part = f"{days}D" if days else ""
    time_part = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if value
    )
    return f"P{date_part}" + (f"T{time_part}" if time_part else "")


def _channel_number(video_id: str) -> int:
    return _digest(video_id) % 40


def _channel_id(video_id: str) -> str:
    return "UC" + hashlib.sha256(f"channel-{_channel_number(video_id)}".encode()).hexdigest()[:22]


def _published_at(video_id: str) -> datetime:
    return _EPOCH + timedelta(seconds=_digest(video_id) % _FIFTEEN_YEARS_S)


def _view_count(video_id: str) -> int | None:
    return None if video_id.startswith("hid") else _digest(video_id) % 50_000_000


def _thumbnails(video_id: str, file_name: str | None = None) -> dict[str, dict[str, Any]]:
    # Like real uploads, some (older, low-resolution) videos lack the standard and maxres sizes.
    sizes = _THUMBNAIL_SIZES if _digest(video_id) % 4 else _THUMBNAIL_SIZES[:3]
    return {
        name: {
            "url": f"https://i.ytimg.com/vi/{video_id}/{file_name or file}",
            "width": width,
            "height": height,
        }
        for name, file, width, height in sizes
    }


def hostile_kind(video_id: str) -> str | None:
    kind = video_id[:3]
    return kind if kind in HOSTILE_KINDS else None


def _poison(item: dict[str, Any], video_id: str) -> dict[str, Any]:
    """The item of a hostile id, spoilt as HOSTILE_KINDS says."""
    kind = hostile_kind(video_id)
    snippet = item.get("snippet", {})
    if kind == "zcc" and snippet:
        snippet["title"] = f"Video\x00 {video_id}\x07\x1b"
        snippet["channelTitle"] = "\x00" + snippet["channelTitle"] + "\x0b"
    elif kind == "zln" and snippet:
        snippet["title"] = "T" * _LONG_TEXT
        snippet["channelTitle"] = "C" * _LONG_TEXT
    elif kind == "zbg":
        if "statistics" in item:
            item["statistics"]["viewCount"] = str(2**64 + 1)
        if "contentDetails" in item:
            item["contentDetails"]["duration"] = "P99999999W"
    elif kind == "zdt" and snippet:
        snippet["publishedAt"] = "0001-01-01T00:00:00+01:00"
    elif kind == "zci" and snippet:
        snippet["channelId"] = "UC" + "x" * 300
    elif kind == "zid":
        item["id"] = video_id + "-" * 300
    elif kind == "zsu" and snippet:
        snippet["title"] = f"Video {video_id} \udc80"  # json.dumps writes it as the escape `\udc80`
    elif kind == "zth" and snippet:
        bad = ("http://i.ytimg.com/vi/x.jpg", "https://i.ytimg.com.evil.example/x.jpg", "javascript:alert(1)")
        for index, thumbnail in enumerate(snippet["thumbnails"].values()):
            thumbnail["url"] = bad[index % len(bad)]
    elif kind == "zpt" and snippet:
        for index, thumbnail in enumerate(snippet["thumbnails"].values()):
            thumbnail["url"] = _BAD_PORTS[index % len(_BAD_PORTS)]
    return item


@dataclass(frozen=True)
class Change:
    """How one video differs from the catalog now (`FakeYouTube.vanish`, `block`, `update`, ...)."""

    state: str | None = None
    """None (listed), `deleted`, `private` or `blocked`."""
    rejection_reason: str = "copyright"
    title: str | None = None
    channel_title: str | None = None
    view_count: int | None = None
    thumbnail: str | None = None
    """A file name under `https://i.ytimg.com/vi/<id>/` for every size, e.g. `hq720.jpg`."""


_UNCHANGED: Final = Change()


def api_item(video_id: str, parts: set[str], change: Change = _UNCHANGED) -> dict[str, Any]:
    """One `youtube#video` resource with the requested parts."""
    item: dict[str, Any] = {"kind": "youtube#video", "etag": f"etag-{video_id}", "id": video_id}
    channel = _channel_number(video_id)
    title = change.title or f"Video {video_id}"
    if "snippet" in parts:
        item["snippet"] = {
            "publishedAt": _published_at(video_id).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channelId": _channel_id(video_id),
            "title": title,
            "description": f"Description of {video_id}",
            "thumbnails": _thumbnails(video_id, change.thumbnail),
            "channelTitle": change.channel_title or f"Channel {channel}",
            "categoryId": "22",
            "liveBroadcastContent": "live" if video_id.startswith("liv") else "none",
            "localized": {"title": title, "description": f"Description of {video_id}"},
        }
    if "contentDetails" in parts:
        item["contentDetails"] = {
            "duration": format_iso8601_duration(_duration_s(video_id)),
            "dimension": "2d",
            "definition": "hd",
            "caption": "false",
            "licensedContent": True,
            "contentRating": {},
            "projection": "rectangular",
        }
    if "statistics" in parts:
        # The API sends counts as strings and omits viewCount when the owner hides it.
        stats = {"likeCount": str(_digest(video_id) % 100_000), "favoriteCount": "0", "commentCount": "7"}
        views = _view_count(video_id) if change.view_count is None else change.view_count
        if views is not None:
            stats["viewCount"] = str(views)
        item["statistics"] = stats
    if "status" in parts:
        item["status"] = {
            "uploadStatus": "processed",
            "privacyStatus": "public",
            "license": "youtube",
            "embeddable": True,
            "publicStatsViewable": True,
            "madeForKids": False,
        }
        if change.state == "blocked":
            item["status"].update(uploadStatus="rejected", rejectionReason=change.rejection_reason)
    return _poison(item, video_id)


def oembed_body(video_id: str, change: Change = _UNCHANGED) -> dict[str, Any]:
    body = _oembed_body(video_id)
    if change.title:
        body["title"] = change.title
    if change.channel_title:
        body["author_name"] = change.channel_title
    if change.thumbnail:
        body["thumbnail_url"] = f"https://i.ytimg.com/vi/{video_id}/{change.thumbnail}"
    kind = hostile_kind(video_id)
    if kind == "zcc":
        body["title"] = f"Video\x00 {video_id}\x07\x1b"
    elif kind == "zln":
        body["title"] = "T" * _LONG_TEXT
    elif kind == "zth":
        body["thumbnail_url"] = "javascript:alert(1)"
    elif kind == "zpt":
        body["thumbnail_url"] = _BAD_PORTS[0]
    return body


def _oembed_body(video_id: str) -> dict[str, Any]:
    channel = _channel_number(video_id)
    return {
        "title": f"Video {video_id}",
        "author_name": f"Channel {channel}",
        "author_url": f"https://www.youtube.com/@channel{channel}",
        "type": "video",
        "height": 113,
        "width": 200,
        "version": "1.0",
        "provider_name": "YouTube",
        "provider_url": "https://www.youtube.com/",
        "thumbnail_height": 360,
        "thumbnail_width": 480,
        "thumbnail_url": f"https://i.ytimg.com/vi/{video_id}/hqdefault.jpg",
        "html": f'<iframe width="200" height="113" src="https://www.youtube.com/embed/{video_id}?feature=oembed"'
        ' frameborder="0" allowfullscreen></iframe>',
    }


def google_error(status: int, reason: str, message: str, domain: str = "youtube.quota") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


# ---- runtime state (shared by all handler threads) ----


@dataclass
class _Injected:
    """Failure injection settings; guarded by FakeYouTube._lock."""

    latency_ms: float = 0.0
    fail_remaining: int = 0
    fail_status: int = 500
    fail_retry_after: float | None = None
    fail_reason: str | None = None
    quota_after: int | None = None
    slow_remaining: int = 0
    slow_seconds: float = 0.0
    hold_remaining: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    trickle_remaining: int = 0
    trickle_interval_s: float = 0.0
    oversize_remaining: int = 0
    oversize_bytes: int = 0


@dataclass
class _Stats:
    requests: int = 0
    api_requests: int = 0
    api_successes: int = 0
    oembed_requests: int = 0
    requests_per_id: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    held: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "api_requests": self.api_requests,
            "api_successes": self.api_successes,
            "oembed_requests": self.oembed_requests,
            "requests_per_id": dict(self.requests_per_id),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "held": self.held,
        }


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    trickle_s: float = 0.0
    """Send the body one byte at a time, this long apart (a server that never quite stops answering)."""

    @classmethod
    def json(cls, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
        return cls(status, json.dumps(payload).encode(), headers=headers)

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
        return cls(status, text.encode(), "text/html; charset=utf-8", headers)


@dataclass(frozen=True)
class _Plan:
    """What the injection decided for one request, taken atomically under the lock."""

    delay_s: float
    fail: _Reply | None
    hold: threading.Event | None = None
    trickle_s: float = 0.0
    oversize_bytes: int = 0


class FakeYouTube:
    """The fake server; start it with `with` (or `start()`/`stop()`); all setters are thread-safe."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0) -> None:
        self.api_key = DEFAULT_API_KEY
        self._lock = threading.Lock()
        self._injected = _Injected(latency_ms=latency_ms)
        self._stats = _Stats()
        self._changes: dict[str, Change] = {}
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PATH

    @property
    def oembed_url(self) -> str:
        return self.base_url + OEMBED_PATH

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-youtube",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- failure injection ----

    @property
    def latency_ms(self) -> float:
        with self._lock:
            return self._injected.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        with self._lock:
            self._injected.latency_ms = value

    def fail_next(
        self, n: int, status: int = 500, retry_after: float | None = None, reason: str | None = None
    ) -> None:
        """The next `n` video requests (either endpoint) answer `status`; `reason` overrides the API's."""
        with self._lock:
            self._injected.fail_remaining = n
            self._injected.fail_status = status
            self._injected.fail_retry_after = retry_after
            self._injected.fail_reason = reason

    def quota_after(self, n: int | None) -> None:
        """After `n` successful Data API requests, every Data API request answers 403 quotaExceeded."""
        with self._lock:
            self._injected.quota_after = n

    def hold_next(self, n: int) -> None:
        """The next `n` video requests wait until `release()` (at most HOLD_MAX_S) before answering: a
        test can act while a request is in flight (`held` says how many wait now)."""
        with self._lock:
            self._injected.hold_remaining = n
            self._injected.gate.clear()

    def release(self) -> None:
        """The held requests go on (and answer as the injection decided when they arrived)."""
        with self._lock:
            self._injected.gate.set()

    @property
    def held(self) -> int:
        with self._lock:
            return self._stats.held

    def trickle_next(self, n: int, interval_s: float) -> None:
        """The next `n` video requests send their answer's body one byte every `interval_s`."""
        with self._lock:
            self._injected.trickle_remaining = n
            self._injected.trickle_interval_s = interval_s

    def oversize_next(self, n: int, size_bytes: int) -> None:
        """The next `n` video requests answer 200 with a JSON body of more than `size_bytes`."""
        with self._lock:
            self._injected.oversize_remaining = n
            self._injected.oversize_bytes = size_bytes

    def slow_next(self, n: int, seconds: float) -> None:
        """The next `n` video requests wait `seconds` before answering (on top of the latency)."""
        with self._lock:
            self._injected.slow_remaining = n
            self._injected.slow_seconds = seconds

    # ---- the catalog changing (what an availability check finds) ----

    def vanish(self, ids: Iterable[str]) -> None:
        """The videos are deleted: absent from `videos.list`, 404 on oEmbed (until `restore`)."""
        self._set_state(ids, "deleted")

    def make_private(self, ids: Iterable[str]) -> None:
        """The videos turn private: absent from `videos.list` (as for anyone but the owner), 401 on oEmbed."""
        self._set_state(ids, "private")

    def block(self, ids: Iterable[str], reason: str = "copyright") -> None:
        """YouTube removed the videos: still listed, with `uploadStatus` `rejected` and this
        `rejectionReason`; 404 on oEmbed."""
        self._set_state(ids, "blocked", rejection_reason=reason)

    def restore(self, ids: Iterable[str]) -> None:
        """The videos are back, as the catalog says (other changes made with `update` stay)."""
        self._set_state(ids, None)

    def update(
        self,
        video_id: str,
        *,
        title: str | None = None,
        channel_title: str | None = None,
        view_count: int | None = None,
        thumbnail: str | None = None,
    ) -> None:
        """The video's metadata changes (None keeps a field as it is)."""
        with self._lock:
            before = self._changes.get(video_id, _UNCHANGED)
            self._changes[video_id] = replace(
                before,
                title=title or before.title,
                channel_title=channel_title or before.channel_title,
                view_count=before.view_count if view_count is None else view_count,
                thumbnail=thumbnail or before.thumbnail,
            )

    def _set_state(self, ids: Iterable[str], state: str | None, **fields: Any) -> None:
        with self._lock:
            for video_id in ids:
                before = self._changes.get(video_id, _UNCHANGED)
                self._changes[video_id] = replace(before, state=state, **fields)

    def change_of(self, video_id: str) -> Change:
        with self._lock:
            return self._changes.get(video_id, _UNCHANGED)

    def is_available(self, video_id: str) -> bool:
        """Whether the video can be watched now: in the catalog and not made unavailable since."""
        return is_listed(video_id) and self.change_of(video_id).state is None

    def reset(self) -> None:
        """Clear injected failures and counters; keeps the latency and the catalog's changes."""
        with self._lock:
            self._injected = _Injected(latency_ms=self._injected.latency_ms)
            self._stats = _Stats()

    def apply_control(self, command: dict[str, Any]) -> None:
        """The `POST /_control` body: any of reset, latency_ms, fail_next, quota_after, slow_next, and the
        catalog's changes: vanish, private, restore (lists of ids), block (`{"ids", "reason"}`), update
        (`{"id", "title", "channel_title", "view_count", "thumbnail"}`)."""
        if command.get("reset"):
            self.reset()
        for name, change in (
            ("vanish", self.vanish),
            ("private", self.make_private),
            ("restore", self.restore),
        ):
            if name in command:
                change(list(command[name]))
        if "block" in command:
            self.block(**command["block"])
        if "update" in command:
            fields = dict(command["update"])
            self.update(fields.pop("id"), **fields)
        if "latency_ms" in command:
            self.latency_ms = float(command["latency_ms"])
        if "fail_next" in command:
            self.fail_next(**command["fail_next"])
        if "quota_after" in command:
            self.quota_after(command["quota_after"])
        if "slow_next" in command:
            self.slow_next(**command["slow_next"])

    # ---- counters ----

    @property
    def requests(self) -> int:
        """Video requests received (both endpoints, failed ones included; not control or stats)."""
        with self._lock:
            return self._stats.requests

    @property
    def requests_per_id(self) -> Counter[str]:
        """How often each id was served successfully (present in `items`, or an oEmbed 200)."""
        with self._lock:
            return Counter(self._stats.requests_per_id)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._stats.max_in_flight

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.as_json()

    # ---- what a client should make of the catalog ----

    @staticmethod
    def expected(video_id: str) -> dict[str, Any]:
        """The values a correct Data API client maps for `video_id` (keys are VideoMetadata's fields):
        for a hostile id, with the poison cleaned out (bounded, stripped, or null)."""
        if not is_listed(video_id) or FakeYouTube.expected_failure(video_id):
            raise KeyError(f"{video_id} is not a listed video, or one a client must fail")
        duration = _duration_s(video_id)
        thumbnails = _thumbnails(video_id)
        best = "maxres" if "maxres" in thumbnails else "high"
        values = {
            "youtube_id": video_id,
            "title": f"Video {video_id}",
            "channel_title": f"Channel {_channel_number(video_id)}",
            "channel_id": _channel_id(video_id),
            "duration_s": duration or None,  # P0D (live) maps to None
            "published_at": _published_at(video_id),
            "thumbnail_url": thumbnails[best]["url"],
            "view_count": _view_count(video_id),
            "from_oembed": False,
        }
        cleaned: dict[str, dict[str, Any]] = {
            "zln": {"title": "T" * 999 + "…", "channel_title": "C" * 999 + "…"},
            "zbg": {"view_count": None, "duration_s": None},
            "zdt": {"published_at": None},
            "zci": {"channel_id": None},
            "zth": {"thumbnail_url": None},
            "zpt": {"thumbnail_url": None},
        }
        return values | cleaned.get(hostile_kind(video_id) or "", {})

    @staticmethod
    def expected_failure(video_id: str) -> bool:
        """Whether a correct Data API client fails this id: its item is unreadable, or not for this id."""
        return hostile_kind(video_id) in {"zid", "zsu"}

    # ---- request handling (called from handler threads) ----

    def handle_video_request(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> _Reply:
        is_api = path == API_PATH + "/videos"
        plan = self._begin(is_api)
        try:
            if plan.hold is not None:
                self._wait_at_gate(plan.hold)
            if plan.delay_s:
                time.sleep(plan.delay_s)
            if plan.fail is not None:
                return replace(plan.fail, trickle_s=plan.trickle_s)
            if plan.oversize_bytes:
                return _Reply(200, b'{"items": [], "padding": "' + b"x" * plan.oversize_bytes + b'"}')
            reply = self._serve_api(query, headers) if is_api else self._serve_oembed(query)
            return replace(reply, trickle_s=plan.trickle_s)
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    def _wait_at_gate(self, gate: threading.Event) -> None:
        with self._lock:
            self._stats.held += 1
        try:
            gate.wait(HOLD_MAX_S)
        finally:
            with self._lock:
                self._stats.held -= 1

    def _begin(self, is_api: bool) -> _Plan:
        with self._lock:
            stats, injected = self._stats, self._injected
            stats.requests += 1
            if is_api:
                stats.api_requests += 1
            else:
                stats.oembed_requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            delay_s = injected.latency_ms / 1000
            if injected.slow_remaining > 0:
                injected.slow_remaining -= 1
                delay_s += injected.slow_seconds
            hold = None
            if injected.hold_remaining > 0:
                injected.hold_remaining -= 1
                hold = injected.gate
            fail = None
            if injected.fail_remaining > 0:
                injected.fail_remaining -= 1
                fail = self._injected_failure(is_api, injected)
            trickle_s = 0.0
            if injected.trickle_remaining > 0:
                injected.trickle_remaining -= 1
                trickle_s = injected.trickle_interval_s
            oversize_bytes = 0
            if injected.oversize_remaining > 0:
                injected.oversize_remaining -= 1
                oversize_bytes = injected.oversize_bytes
            return _Plan(delay_s, fail, hold, trickle_s, oversize_bytes)

    @staticmethod
    def _injected_failure(is_api: bool, injected: _Injected) -> _Reply:
        status = injected.fail_status
        headers = (
            () if injected.fail_retry_after is None else (("Retry-After", f"{injected.fail_retry_after:g}"),)
        )
        if not is_api:
            return _Reply.text(status, HTTPStatus(status).phrase, headers)
        reason = injected.fail_reason or _DEFAULT_ERROR_REASONS.get(status, "backendError")
        domain = "youtube.quota" if "Limit" in reason or "quota" in reason else "global"
        return _Reply.json(
            status, google_error(status, reason, f"Injected failure: {reason}", domain), headers
        )

    def _serve_api(self, query: dict[str, list[str]], headers: dict[str, str]) -> _Reply:
        key = headers.get("x-goog-api-key") or _first(query, "key")
        if not key:
            message = "The request is missing a valid API key."
            return _Reply.json(403, google_error(403, "forbidden", message, "global"))
        if key != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            return _Reply.json(400, google_error(400, "keyInvalid", message, "usageLimits"))
        ids = [part for part in (_first(query, "id") or "").split(",") if part]
        if len(ids) > API_BATCH_LIMIT:
            message = "The request specifies an invalid filter parameter."
            return _Reply.json(400, google_error(400, "invalidFilters", message, "youtube.parameter"))
        changes = {video_id: self.change_of(video_id) for video_id in dict.fromkeys(ids)}
        listed = [
            video_id
            for video_id, change in changes.items()
            if is_listed(video_id) and change.state not in ("deleted", "private")
        ]
        if not self._spend_quota(listed):
            message = (
                "The request cannot be completed because you have exceeded your "
                '<a href="/youtube/v3/getting-started#quota">quota</a>.'
            )
            return _Reply.json(403, google_error(403, "quotaExceeded", message))
        parts = set((_first(query, "part") or "").split(","))
        items = [api_item(video_id, parts, changes[video_id]) for video_id in listed]
        return _Reply.json(
            200,
            {
                "kind": "youtube#videoListResponse",
                "etag": "fake-etag",
                "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            },
        )

    def _spend_quota(self, served_ids: list[str]) -> bool:
        """Count a successful Data API request, or return False once the injected quota is used up."""
        with self._lock:
            quota = self._injected.quota_after
            if quota is not None and self._stats.api_successes >= quota:
                return False
            self._stats.api_successes += 1
            self._stats.requests_per_id.update(served_ids)
            return True

    def _serve_oembed(self, query: dict[str, list[str]]) -> _Reply:
        video_id = _video_id_from_watch_url(_first(query, "url") or "")
        if video_id is None or not _VIDEO_ID.fullmatch(video_id):
            return _Reply.text(400, "Bad Request")
        change = self.change_of(video_id)
        if is_deleted(video_id) or change.state in ("deleted", "blocked"):
            return _Reply.text(404, "Not Found")
        if is_private(video_id) or change.state == "private":
            return _Reply.text(401, "Unauthorized")
        with self._lock:
            self._stats.requests_per_id[video_id] += 1
        return _Reply.json(200, oembed_body(video_id, change))


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _video_id_from_watch_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.netloc.endswith("youtu.be"):
        return parts.path.lstrip("/") or None
    if parts.path == "/watch":
        return _first(parse_qs(parts.query), "v")
    return None


# ---- HTTP plumbing ----


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a thread still sleeping in slow_next must not hold up shutdown
    request_queue_size = 256  # the default backlog of 5 refuses bursts of concurrent connections

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeYouTube
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here (slow_next); anything else is a bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoints
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would stall the second
    server: _Server
    timeout = 30  # idle keep-alive connections eventually release their thread

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        fake = self.server.fake
        if url.path == "/_stats":
            self._send(_Reply.json(200, fake.stats()))
        elif url.path in (API_PATH + "/videos", OEMBED_PATH):
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(fake.handle_video_request(url.path, parse_qs(url.query), headers))
        else:
            self._send(_Reply.text(404, "Not Found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if urlsplit(self.path).path != "/_control":
            self._send(_Reply.text(404, "Not Found"))
            return
        try:
            command = json.loads(body or b"{}")
            self.server.fake.apply_control(command)
        except (ValueError, TypeError) as exc:
            self._send(_Reply.json(400, {"error": str(exc)}))
            return
        self._send(_Reply.json(200, self.server.fake.stats()))

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if not reply.trickle_s:
            self.wfile.write(reply.body)
            return
        for index in range(len(reply.body)):
            self.wfile.write(reply.body[index : index + 1])
            self.wfile.flush()
            time.sleep(reply.trickle_s)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests' output should show failures, not access logs."""


# ---- `python -m testkit.fake_youtube` ----


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake YouTube until SIGTERM or SIGINT.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    fake = FakeYouTube(host=args.host, port=args.port, latency_ms=args.latency_ms)
    fake.api_key = args.api_key
    with fake:
        print(f"listening on {fake.base_url}", flush=True)
        while not stop.wait(0.2):  # a timed wait lets the signal handler run promptly
            pass


if __name__ == "__main__":
    main()
