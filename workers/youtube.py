"""Async YouTube metadata client: the Data API v3 `videos.list` when a key is set, else oEmbed.

It knows nothing of SAQ or the database: `fetch(ids)` sorts every id into exactly one of
`found` (metadata), `unavailable` (YouTube's verdict: not found, private, deleted, invalid), `transient`
(still failing after every retry: 429, 5xx, timeouts, connection errors; worth retrying later) or
`unreadable` (YouTube answered for it, but not readably: no verdict).
Job-wide problems raise `YouTubeError` instead, and the caller leaves the remaining videos pending: a bad
key or a disabled API stops the job; YouTube's `quotaExceeded` makes it wait for the quota's reset
(workers/processing.py). So does an outage stop it (`YouTubeUnreachable`): every request of one `fetch`
ended in a connection error, a timeout or a 5xx after its retries.

A video the Data API still lists but that nobody can watch (deleted, rejected for copyright or terms of
use, failed upload, private) is `unavailable` with YouTube's reason, like one it no longer lists.
Every Data API request, retries included, costs a unit of the daily quota: `spend` is awaited before each
one and may raise to stop the fetch (the workers' shared daily budget, app/services/quota.py).

Everything taken from YouTube is bounded and cleaned before it leaves this module (`_clean_text`,
`_parse_count`, `_safe_thumbnail`, ...): a hostile or broken answer can fail one video, never a batch.
One item of a `videos.list` answer that does not decode fails that id alone.

The API key travels in the `X-Goog-Api-Key` header rather than the `key=` query parameter: httpx logs
every request URL at INFO level, and a key in the URL would end up in the worker's logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec

from workers.thumbnails import is_thumbnail_host

log = logging.getLogger(__name__)

__all__ = [
    "FetchResult",
    "VideoMetadata",
    "YouTubeClient",
    "YouTubeError",
    "YouTubeUnreachable",
    "parse_iso8601_duration",
]

API_BATCH_LIMIT: Final = 50  # videos.list accepts at most 50 ids per request
OEMBED_BATCH_PER_SLOT: Final = 4

REASON_NOT_FOUND_API: Final = "video not found, private or deleted"
REASON_NOT_FOUND: Final = "video not found or deleted"
REASON_PRIVATE: Final = "video is private or embedding is disabled"
REASON_INVALID_ID: Final = "invalid video id"
REASON_UNREADABLE: Final = "YouTube sent an unreadable answer for this video"
REASON_PRIVATE_API: Final = "video is private"
# `status.uploadStatus` values after which nobody can watch the video, and what they mean.
_GONE_UPLOAD_STATUSES: Final = {
    "deleted": "video was deleted",
    "failed": "video upload failed",
    "rejected": "video was removed by YouTube",
}
# `status.rejectionReason`, in words.
_REJECTION_REASONS: Final = {
    "claim": "a copyright claim",
    "copyright": "copyright infringement",
    "duplicate": "a duplicate upload",
    "inappropriate": "inappropriate content",
    "legal": "legal reasons",
    "length": "too long",
    "termsOfUse": "a terms of use violation",
    "trademark": "trademark infringement",
    "uploaderAccountClosed": "the uploader's account was closed",
    "uploaderAccountSuspended": "the uploader's account was suspended",
}

TEXT_MAX: Final = 1000
"""Titles and channel names are cut to this many characters."""
URL_MAX: Final = 2000
ERROR_TEXT_MAX: Final = 200
"""Reasons and messages of YouTube's error answers are cut to this many characters."""
BIGINT_MAX: Final = 2**63 - 1
INTEGER_MAX: Final = 2**31 - 1
# Thumbnails are shown in people's browsers: only https URLs on YouTube's own image hosts are kept
# (workers/thumbnails.py: the dashboard's CSP allows the same hosts).
_CHANNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# YouTube ids are 11 characters of the URL-safe base64 alphabet. Checking before sending keeps a stray
# comma or slash from corrupting a batched `id=` list or the oEmbed watch URL.
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")

_THUMBNAIL_PREFERENCE: Final = ("maxres", "standard", "high", "medium", "default")

# Reasons that no retry can fix: the whole job must stop with a clear message.
_FATAL_MESSAGES: Final[dict[str, str]] = {
    "quotaExceeded": "the YouTube API quota is exhausted",
    "dailyLimitExceeded": "the YouTube API's daily limit is reached",
    "keyInvalid": "the configured YouTube API key is not valid; fix it, then retry the job",
    "accessNotConfigured": (
        "the YouTube Data API v3 is not enabled for the API key's Google Cloud project; enable it, "
        "then retry the job"
    ),
    "forbidden": "the YouTube API refused the request (forbidden); check the API key's restrictions",
}
# ErrorInfo reasons (`error.details[].reason`) that mean the same as a legacy `errors[].reason`.
_ERROR_INFO_REASONS: Final[dict[str, str]] = {
    "API_KEY_INVALID": "keyInvalid",
    "SERVICE_DISABLED": "accessNotConfigured",
    "API_KEY_SERVICE_BLOCKED": "forbidden",
    "API_KEY_HTTP_REFERRER_BLOCKED": "forbidden",
    "API_KEY_IP_ADDRESS_BLOCKED": "forbidden",
    "API_KEY_ANDROID_APP_BLOCKED": "forbidden",
    "API_KEY_IOS_APP_BLOCKED": "forbidden",
}
# Google answers per-user or per-second throttling with a 403 carrying one of these reasons.
_RATE_LIMIT_REASONS: Final = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_RETRYABLE_STATUSES: Final = frozenset({408, 429})


class VideoMetadata(msgspec.Struct, frozen=True):
    """Metadata of one available video.

    `duration_s` is None when unknown: oEmbed mode, an unparseable value, or a zero duration (`P0D`),
    which YouTube reports for live streams and premieres that have not ended.
    `published_at`, `view_count` and `channel_id` are None in oEmbed mode; `view_count` is also None
    when the owner hides it.
    """

    youtube_id: str
    title: str
    channel_title: str | None
    channel_id: str | None
    duration_s: int | None
    published_at: datetime | None
    thumbnail_url: str | None
    view_count: int | None
    from_oembed: bool = False
    """oEmbed's answer: no views, duration or date, and always the same small thumbnail."""


class FetchResult(msgspec.Struct):
    """Every requested id lands in exactly one of the four dicts (id → reason, but for `found`)."""

    found: dict[str, VideoMetadata] = msgspec.field(default_factory=dict)
    unavailable: dict[str, str] = msgspec.field(default_factory=dict)
    """YouTube's verdict: nobody can watch the video (not found, private, deleted, removed, bad id)."""
    transient: dict[str, str] = msgspec.field(default_factory=dict)
    """No answer (still failing after every retry): worth asking again later."""
    unreadable: dict[str, str] = msgspec.field(default_factory=dict)
    """YouTube answered for the video, but what it sent could not be read: no verdict either way."""


class YouTubeError(Exception):
    """A failure that stops the whole job; `str()` is a message fit for the user (never the key)."""

    def __init__(self, message: str, *, reason: str = "unknown", status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class YouTubeUnreachable(YouTubeError):
    """Every request of a fetch failed to reach YouTube (connection errors, timeouts, 5xx) after retries."""

    def __init__(self, last_failure: str) -> None:
        super().__init__(f"YouTube could not be reached ({last_failure})", reason="unreachable")
        self.last_failure = last_failure


# ---- wire format (only the fields we read; everything defaults so a sparse item still maps) ----


class _Thumbnail(msgspec.Struct):
    url: str | None = None


class _Snippet(msgspec.Struct, rename="camel"):
    published_at: str | None = None
    channel_id: str | None = None
    title: str = ""
    channel_title: str | None = None
    thumbnails: dict[str, _Thumbnail] = msgspec.field(default_factory=dict)


class _ContentDetails(msgspec.Struct):
    duration: str | None = None


class _Statistics(msgspec.Struct, rename="camel"):
    # Documented as a string (uint64 in JSON strings); accept a bare number too.
    view_count: str | int | None = None


class _Status(msgspec.Struct, rename="camel"):
    upload_status: str | None = None
    rejection_reason: str | None = None
    privacy_status: str | None = None


class _Video(msgspec.Struct, rename="camel"):
    id: str
    snippet: _Snippet = msgspec.field(default_factory=_Snippet)
    content_details: _ContentDetails = msgspec.field(default_factory=_ContentDetails)
    statistics: _Statistics = msgspec.field(default_factory=_Statistics)
    status: _Status = msgspec.field(default_factory=_Status)


class _VideoListResponse(msgspec.Struct):
    # Required: the API always sends `items` (empty when no id matched); an answer without it is not
    # one we can read, and taking it as "none of these exist" would mark 50 videos gone.
    items: list[_Video]


class _ErrorItem(msgspec.Struct):
    reason: str = ""
    message: str = ""


class _ErrorDetail(msgspec.Struct):
    reason: str = ""


class _ErrorBody(msgspec.Struct):
    code: int = 0
    message: str = ""
    errors: list[_ErrorItem] = msgspec.field(default_factory=list)
    # Newer Google errors put the precise cause in a google.rpc.ErrorInfo entry here and a generic
    # "badRequest" / "forbidden" in `errors`.
    details: list[_ErrorDetail] = msgspec.field(default_factory=list)


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


class _OEmbed(msgspec.Struct):
    title: str = ""
    author_name: str | None = None
    thumbnail_url: str | None = None


# ---- field parsing: never raises; an odd value becomes None ----

_DURATION = re.compile(
    r"P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?"
)


def parse_iso8601_duration(value: str | None) -> int | None:
    """Seconds in an ISO 8601 duration as YouTube sends it (`PT4M13S`, `P1DT2H`); None if zero or odd.

    Zero (`P0D`, `PT0S`) means a live stream or an unfinished premiere, not a zero-length video.
    Years and months are rejected: their length in seconds is ambiguous and YouTube never sends them.
    """
    if not value:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    parts = {name: float(text.replace(",", ".")) for name, text in match.groupdict().items() if text}
    seconds = (
        parts.get("weeks", 0.0) * 604_800
        + parts.get("days", 0.0) * 86_400
        + parts.get("hours", 0.0) * 3_600
        + parts.get("minutes", 0.0) * 60
        + parts.get("seconds", 0.0)
    )
    # `duration_s` is an INTEGER column; a duration past it (or a float that overflowed) is not real.
    if not seconds < INTEGER_MAX:
        return None
    return round(seconds) or None


def _parse_published_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # A timestamp without an offset would be ambiguous; YouTube's are UTC ("Z").
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Shifting year 1 or 9999 to UTC can leave datetime's range.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _parse_count(value: str | int | None) -> int | None:
    """A count that fits the BIGINT column, else None."""
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if 0 <= count <= BIGINT_MAX else None


def _clean_text(value: str | None, limit: int = TEXT_MAX) -> str | None:
    """Without control characters (NUL included) and lone surrogates, which no column takes; cut to
    `limit`. None when nothing is left."""
    if not value:
        return None
    kept = "".join(
        " " if char in "\t\n\r" else char
        for char in value
        if char in "\t\n\r" or unicodedata.category(char) not in ("Cc", "Cs")
    ).strip()
    if len(kept) > limit:
        kept = kept[: limit - 1] + "…"
    return kept or None


def _channel_id(value: str | None) -> str | None:
    return value if value and _CHANNEL_ID.fullmatch(value) else None


def _safe_thumbnail(url: str | None) -> str | None:
    """An https URL on one of YouTube's image hosts, else None (it ends up in people's browsers)."""
    if not url or len(url) > URL_MAX or _clean_text(url, URL_MAX) != url or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    on_youtube = is_thumbnail_host(host)
    # No userinfo and no port at all: `parts.port` would raise on `:abc` or `:99999` and accept `:0`.
    if parts.scheme != "https" or not on_youtube or parts.netloc.lower() != host:
        return None
    return url


def _best_thumbnail(thumbnails: dict[str, _Thumbnail]) -> str | None:
    """The largest thumbnail with a safe URL."""
    for size in _THUMBNAIL_PREFERENCE:
        thumbnail = thumbnails.get(size)
        url = _safe_thumbnail(thumbnail.url if thumbnail is not None else None)
        if url is not None:
            return url
    return None


def _metadata_from_api(video: _Video) -> VideoMetadata:
    snippet = video.snippet
    return VideoMetadata(
        youtube_id=video.id,
        title=_clean_text(snippet.title) or "",
        channel_title=_clean_text(snippet.channel_title),
        channel_id=_channel_id(snippet.channel_id),
        duration_s=parse_iso8601_duration(video.content_details.duration),
        published_at=_parse_published_at(snippet.published_at),
        thumbnail_url=_best_thumbnail(snippet.thumbnails),
        view_count=_parse_count(video.statistics.view_count),
    )


def _unwatchable_reason(video: _Video) -> str | None:
    """Why a listed video cannot be watched by anyone (deleted, rejected, failed, private), or None."""
    status = video.status
    gone = _GONE_UPLOAD_STATUSES.get(status.upload_status or "")
    if gone is not None:
        why = _REJECTION_REASONS.get(status.rejection_reason or "")
        return f"{gone} ({why})" if why else gone
    if status.privacy_status == "private":
        return REASON_PRIVATE_API
    return None


def _metadata_from_oembed(video_id: str, oembed: _OEmbed) -> VideoMetadata:
    return VideoMetadata(
        youtube_id=video_id,
        title=_clean_text(oembed.title) or "",
        channel_title=_clean_text(oembed.author_name),
        channel_id=None,  # oEmbed gives only the channel's handle URL, not its UC... id
        duration_s=None,
        published_at=None,
        thumbnail_url=_safe_thumbnail(oembed.thumbnail_url),
        view_count=None,
        from_oembed=True,
    )


def _verdict_from_api(video: _Video) -> VideoMetadata | _Unavailable | _Unreadable:
    """What one listed item says about its video. Cleaning an item must never fail its batch: an error
    here (a value no parser foresaw) makes that one id unreadable, with a reason a person can read."""
    try:
        unwatchable = _unwatchable_reason(video)
        if unwatchable is not None:
            return _Unavailable(unwatchable)
        return _metadata_from_api(video)
    except Exception:
        log.exception("an item of a videos.list answer could not be read (video %r)", video.id[:64])
        return _Unreadable(REASON_UNREADABLE)


def _decode_items_one_by_one(content: bytes) -> tuple[list[_Video], dict[str, str]] | None:
    """A `videos.list` answer that msgspec refused as a whole, item by item: the items that decode, and
    for each id whose item does not, why. None when the answer is not even JSON with an `items` list.

    The standard library's decoder accepts what msgspec refuses (a lone surrogate escape), so each item
    is encoded again and given to msgspec on its own.
    """
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        return None
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return None  # (no `items` at all: the whole answer is unreadable, see _VideoListResponse)
    decoded: list[_Video] = []
    unreadable: dict[str, str] = {}
    for item in items:
        try:
            decoded.append(msgspec.json.decode(json.dumps(item), type=_Video))
        except (msgspec.DecodeError, RecursionError, ValueError):
            video_id: Any = item.get("id") if isinstance(item, dict) else None
            if isinstance(video_id, str) and _VIDEO_ID.fullmatch(video_id):
                unreadable[video_id] = REASON_UNREADABLE
    return decoded, unreadable


def _retry_after_seconds(response: _Answer) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    header = response.headers.get("retry-after")
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_reason(error: _ErrorBody) -> str:
    """The most specific reason in a Google error body, in the legacy `errors[].reason` vocabulary."""
    legacy = [item.reason for item in error.errors if item.reason]
    for reason in legacy:
        if reason in _FATAL_MESSAGES or reason in _RATE_LIMIT_REASONS:
            return reason
    for detail in error.details:
        if detail.reason in _ERROR_INFO_REASONS:
            return _ERROR_INFO_REASONS[detail.reason]
    return legacy[0] if legacy else ""


def _is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUSES or status >= 500


def _unique_in_order(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- retry plumbing ----


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer read in full (within the client's deadline and size cap)."""

    status_code: int
    headers: httpx.Headers
    content: bytes


class _Overdue(Exception):
    """The request's total deadline passed (a server trickling its answer never trips a read timeout)."""


class _Oversized(Exception):
    """The answer's body passed the client's size cap."""


@dataclass(frozen=True, slots=True)
class _Retryable:
    reason: str
    retry_after_s: float | None = None
    unreachable: bool = False
    """A connection error, a timeout or a 5xx: YouTube may be down (not a 429 or an unreadable answer)."""


@dataclass(frozen=True, slots=True)
class _Items:
    """A decoded `videos.list` answer: its items, and the ids whose own item was unreadable."""

    videos: list[_Video]
    unreadable: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Unavailable:
    reason: str


@dataclass(frozen=True, slots=True)
class _Unreadable:
    reason: str


_T = TypeVar("_T")
_OEmbedOutcome = VideoMetadata | _Unavailable | _Unreadable | _Retryable


def _record(
    result: FetchResult, video_id: str, outcome: VideoMetadata | _Unavailable | _Unreadable | _Retryable
) -> None:
    """Puts the id into the one dict of `result` its outcome says."""
    if isinstance(outcome, VideoMetadata):
        result.found[video_id] = outcome
    elif isinstance(outcome, _Unavailable):
        result.unavailable[video_id] = outcome.reason
    elif isinstance(outcome, _Unreadable):
        result.unreadable[video_id] = outcome.reason
    else:
        result.transient[video_id] = outcome.reason


class YouTubeClient:
    """Fetches video metadata; see the module docstring for how outcomes are sorted."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str | None,
        api_url: str = "https://www.googleapis.com/youtube/v3",
        oembed_url: str = "https://www.youtube.com/oembed",
        concurrency: int = 8,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        retry_budget_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        spend: Callable[[], Awaitable[None]] | None = None,
        request_timeout_s: float = 20.0,
        max_body_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """`retry_budget_s`: a fetch retries requests that did not reach YouTube (connection errors,
        timeouts, 5xx) only this long after it began, so an outage, even one that times out rather than
        refuses, is told within about that time. `spend`: awaited before every Data API request (one
        quota unit); whatever it raises stops the fetch and leaves it. `request_timeout_s`: the most one
        request may take in all (httpx's timeouts are per read: a trickling answer would never end); it
        counts as a timeout. `max_body_bytes`: the largest answer read (50 items are far below 1 MB);
        a larger one is an unreadable answer."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._http = http
        # An empty YOUTUBE_API_KEY means "not configured", not "a key that is the empty string".
        self._api_key = api_key or None
        self._videos_url = api_url.rstrip("/") + "/videos"
        self._oembed_url = oembed_url
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._retry_budget_s = retry_budget_s
        self._clock = clock
        self._spend = spend
        self._request_timeout_s = request_timeout_s
        self._max_body_bytes = max_body_bytes

    @property
    def mode(self) -> Literal["api", "oembed"]:
        return "api" if self._api_key else "oembed"

    @property
    def batch_size(self) -> int:
        """How many ids one `fetch` call should get so that a job-stopping error loses little work."""
        return API_BATCH_LIMIT if self.mode == "api" else OEMBED_BATCH_PER_SLOT * self._concurrency

    async def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Raises YouTubeError for a job-wide problem, YouTubeUnreachable when no request got through."""
        result = FetchResult()
        valid: list[str] = []
        for video_id in _unique_in_order(ids):
            if _VIDEO_ID.fullmatch(video_id):
                valid.append(video_id)
            else:
                result.unavailable[video_id] = REASON_INVALID_ID
        deadline = self._clock() + self._retry_budget_s
        if self._api_key:
            failures = await self._fetch_from_api(valid, self._api_key, result, deadline)
        else:
            failures = await self._fetch_from_oembed(valid, result, deadline)
        # Every request failed to reach YouTube: an outage, not a verdict on these videos.
        everything_failed = bool(valid) and len(result.transient) == len(valid)
        if everything_failed and all(failure.unreachable for failure in failures):
            raise YouTubeUnreachable(failures[-1].reason)
        return result

    # ---- Data API mode ----

    async def _fetch_from_api(
        self, ids: Sequence[str], api_key: str, result: FetchResult, deadline: float
    ) -> list[_Retryable]:
        """Fills `result`; returns the failure of each chunk that failed."""
        failures: list[_Retryable] = []
        # Chunks go one after another: a quota error then stops before spending more requests.
        for chunk in _chunks(ids, API_BATCH_LIMIT):
            outcome = await self._with_retries(
                functools.partial(self._request_videos, chunk, api_key), self._interpret_videos, deadline
            )
            if isinstance(outcome, _Retryable):
                result.transient.update(dict.fromkeys(chunk, outcome.reason))
                failures.append(outcome)
                continue
            verdicts: dict[str, VideoMetadata | _Unavailable | _Unreadable] = {}
            for video in outcome.videos:
                # An id listed twice keeps its first item's verdict: each id lands in one outcome.
                if video.id in chunk and video.id not in verdicts:
                    verdicts[video.id] = _verdict_from_api(video)
            for video_id, reason in outcome.unreadable.items():
                verdicts.setdefault(video_id, _Unreadable(reason))
            for video_id in chunk:
                _record(result, video_id, verdicts.get(video_id, _Unavailable(REASON_NOT_FOUND_API)))
        return failures

    async def _request_videos(self, chunk: Sequence[str], api_key: str) -> _Answer:
        if self._spend is not None:
            await self._spend()
        # No maxResults: the API documents it as unsupported together with `id`. Every part costs the
        # same (videos.list is one unit a call, whatever it asks for).
        return await self._get(
            self._videos_url,
            params={"part": "snippet,contentDetails,statistics,status", "id": ",".join(chunk)},
            headers={"X-Goog-Api-Key": api_key},
        )

    def _interpret_videos(self, response: _Answer) -> _Items | _Retryable:
        if response.status_code == 200:
            try:
                return _Items(msgspec.json.decode(response.content, type=_VideoListResponse).items, {})
            except (msgspec.DecodeError, RecursionError):
                one_by_one = _decode_items_one_by_one(response.content)
                if one_by_one is None:
                    return _Retryable(
                        "YouTube API sent an unreadable response", _retry_after_seconds(response)
                    )
                return _Items(*one_by_one)
        status = response.status_code
        error = self._decode_api_error(response)
        reason = _error_reason(error)
        if reason in _FATAL_MESSAGES:
            raise YouTubeError(_FATAL_MESSAGES[reason], reason=reason, status=status)
        if reason in _RATE_LIMIT_REASONS or _is_retryable_status(status):
            label = f"{reason}, " if reason else ""
            return _Retryable(
                f"YouTube API answered {label}HTTP {status}",
                _retry_after_seconds(response),
                unreachable=status >= 500 and reason not in _RATE_LIMIT_REASONS,
            )
        raise YouTubeError(self._unexpected_api_error(status, reason, error.message), reason=reason or "http")

    @staticmethod
    def _decode_api_error(response: _Answer) -> _ErrorBody:
        """The error body, its texts cleaned like every other text from YouTube: they end up in job
        messages and video errors, and a NUL there would make the database refuse the batch."""
        try:
            error = msgspec.json.decode(response.content, type=_ErrorEnvelope).error
        except (msgspec.DecodeError, RecursionError):
            return _ErrorBody()
        return _ErrorBody(
            code=error.code,
            message=_clean_text(error.message, ERROR_TEXT_MAX) or "",
            errors=[
                _ErrorItem(
                    reason=_clean_text(item.reason, ERROR_TEXT_MAX) or "",
                    message=_clean_text(item.message, ERROR_TEXT_MAX) or "",
                )
                for item in error.errors
            ],
            details=[_ErrorDetail(reason=_clean_text(d.reason, ERROR_TEXT_MAX) or "") for d in error.details],
        )

    def _unexpected_api_error(self, status: int, reason: str, message: str) -> str:
        detail = f"{reason}: {message}" if reason and message else reason or message or "no details"
        if self._api_key:
            # Google's messages do not echo the key, but a proxy in between might.
            detail = detail.replace(self._api_key, "***")
        return f"YouTube API request failed with HTTP {status} ({detail[:200]})"

    # ---- oEmbed mode ----

    async def _fetch_from_oembed(
        self, ids: Sequence[str], result: FetchResult, deadline: float
    ) -> list[_Retryable]:
        """Fills `result`; returns the failure of each id that failed transiently."""
        slots = asyncio.Semaphore(self._concurrency)
        failures: list[_Retryable] = []

        async def fetch_one(video_id: str) -> None:
            async with slots:
                outcome: _OEmbedOutcome
                if self._clock() >= deadline and not (result.found or result.unavailable):
                    # Past the budget and nothing got through yet: an outage; don't queue more timeouts.
                    outcome = _Retryable("YouTube did not answer in time; not tried", unreachable=True)
                else:
                    outcome = await self._with_retries(
                        functools.partial(self._request_oembed, video_id),
                        functools.partial(self._interpret_oembed, video_id),
                        deadline,
                    )
            _record(result, video_id, outcome)
            if isinstance(outcome, _Retryable):
                failures.append(outcome)

        async with asyncio.TaskGroup() as tasks:
            for video_id in ids:
                tasks.create_task(fetch_one(video_id))
        return failures

    async def _request_oembed(self, video_id: str) -> _Answer:
        return await self._get(
            self._oembed_url,
            params={"url": f"https://www.youtube.com/watch?v={video_id}", "format": "json"},
        )

    @staticmethod
    def _interpret_oembed(video_id: str, response: _Answer) -> _OEmbedOutcome:
        status = response.status_code
        if status == 200:
            try:
                oembed = msgspec.json.decode(response.content, type=_OEmbed)
            except (msgspec.DecodeError, RecursionError):
                return _Retryable(
                    "YouTube oEmbed sent an unreadable response", _retry_after_seconds(response)
                )
            try:
                return _metadata_from_oembed(video_id, oembed)
            except Exception:  # a value no cleaner foresaw: this video alone has no verdict
                log.exception("the oEmbed answer for video %s could not be read", video_id)
                return _Unreadable(REASON_UNREADABLE)
        if status == 404:
            return _Unavailable(REASON_NOT_FOUND)
        if status in (401, 403):
            return _Unavailable(REASON_PRIVATE)
        if status == 400:
            return _Unavailable(REASON_INVALID_ID)
        # Anything else (429, 5xx, or a status oEmbed is not known to send) is not proof the video is
        # gone, so it is retried and at worst reported as transient.
        return _Retryable(
            f"YouTube oEmbed answered HTTP {status}",
            _retry_after_seconds(response),
            unreachable=status >= 500,
        )

    # ---- shared retry loop ----

    async def _with_retries(
        self,
        send: Callable[[], Awaitable[_Answer]],
        interpret: Callable[[_Answer], _T | _Retryable],
        deadline: float,
    ) -> _T | _Retryable:
        """Send until `interpret` accepts the answer, attempts run out, or the next attempt would start
        after `deadline`; the last failure is returned."""
        for attempt in range(1, self._max_attempts + 1):
            outcome = await self._attempt(send, interpret)
            if not isinstance(outcome, _Retryable):
                return outcome
            delay = self._backoff_delay(attempt, outcome.retry_after_s)
            # The budget bounds how long an outage takes to tell; throttling (429) keeps its attempts.
            out_of_time = outcome.unreachable and self._clock() + delay >= deadline
            if attempt == self._max_attempts or out_of_time:
                reason = f"{outcome.reason} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
                return _Retryable(reason, unreachable=outcome.unreachable)
            await self._sleep(delay)
        raise AssertionError("unreachable: the loop returns on its last attempt")

    async def _get(
        self, url: str, *, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> _Answer:
        """GET, the body read as it streams in: the whole request ends within `request_timeout_s`
        (raises _Overdue) and a body past `max_body_bytes` (decoded) is given up (raises _Oversized)."""
        try:
            async with asyncio.timeout(self._request_timeout_s):
                async with self._http.stream("GET", url, params=params, headers=headers) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_body_bytes:
                            raise _Oversized
                    return _Answer(response.status_code, response.headers, bytes(body))
        except TimeoutError as exc:
            raise _Overdue from exc

    @staticmethod
    async def _attempt(
        send: Callable[[], Awaitable[_Answer]],
        interpret: Callable[[_Answer], _T | _Retryable],
    ) -> _T | _Retryable:
        # Reasons are our own words: httpx's exception text can contain the request URL.
        try:
            response = await send()
        except (httpx.TimeoutException, _Overdue):
            return _Retryable("request to YouTube timed out", unreachable=True)
        except _Oversized:
            # Not an outage: YouTube answered, with more than any answer of ours can be. Like an
            # unreadable 200, it is retried, then its ids are transient.
            return _Retryable("YouTube sent an answer too large to read")
        except httpx.TransportError as exc:  # connection refused or reset, DNS, proxy, protocol errors
            return _Retryable(f"could not reach YouTube ({type(exc).__name__})", unreachable=True)
        except httpx.RequestError as exc:  # bad gzip, redirect loops
            return _Retryable(f"YouTube's answer could not be read ({type(exc).__name__})")
        return interpret(response)

    def _backoff_delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Full-jitter exponential backoff, unless the server said how long to wait (capped either way)."""
        if retry_after_s is not None:
            return min(retry_after_s, self._backoff_max_s)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(0.0, ceiling)
