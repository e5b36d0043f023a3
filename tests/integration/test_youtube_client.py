"""The YouTube client against the fake YouTube over real HTTP (plus table-driven parsing units)."""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from testkit.fake_youtube import HOSTILE_KINDS, FakeYouTube, format_iso8601_duration, oembed_body
from testkit.harness import free_port
from workers import youtube as yt
from workers.youtube import (
    REASON_INVALID_ID,
    REASON_NOT_FOUND,
    REASON_NOT_FOUND_API,
    REASON_PRIVATE,
    REASON_UNREADABLE,
    FetchResult,
    YouTubeClient,
    YouTubeError,
    YouTubeUnreachable,
    parse_iso8601_duration,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


class RecordingSleep:
    """Stands in for asyncio.sleep: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeYouTube]:
    with FakeYouTube(latency_ms=0) as youtube:
        yield youtube


@asynccontextmanager
async def youtube_client(
    fake: FakeYouTube, *, api: bool = True, timeout: float = 5.0, **options: Any
) -> AsyncIterator[tuple[YouTubeClient, RecordingSleep]]:
    sleep = RecordingSleep()
    options.setdefault("api_key", fake.api_key if api else None)
    options.setdefault("api_url", fake.api_url)
    async with httpx.AsyncClient(timeout=timeout) as http:
        client = YouTubeClient(http, oembed_url=fake.oembed_url, sleep=sleep, rng=random.Random(7), **options)
        yield client, sleep


def video_ids(count: int, prefix: str = "vid") -> list[str]:
    return [f"{prefix}{index:08d}" for index in range(count)]


def assert_partitioned(result: FetchResult, ids: list[str]) -> None:
    outcomes = [set(result.found), set(result.unavailable), set(result.transient), set(result.unreadable)]
    assert set().union(*outcomes) == set(ids)
    assert sum(map(len, outcomes)) == len(set(ids)), "every id in exactly one outcome"


# ---- Data API mode: mapping and batching ----


async def test_api_mode_maps_every_field(fake: FakeYouTube) -> None:
    """Every VideoMetadata field equals what the fake's wire data means, including live and hidden views."""
    ids = [*video_ids(40), "livestream1", "hidviews001"]
    async with youtube_client(fake) as (client, _):
        result = await client.fetch(ids)

    assert set(result.found) == set(ids)
    for video_id in ids:
        assert msgspec.structs.asdict(result.found[video_id]) == fake.expected(video_id)
    assert result.found["livestream1"].duration_s is None
    assert result.found["hidviews001"].view_count is None
    thumbnails = {
        meta.thumbnail_url.rsplit("/", 1)[1] for meta in result.found.values() if meta.thumbnail_url
    }
    assert thumbnails == {"maxresdefault.jpg", "hqdefault.jpg"}, "sample must cover a video without maxres"
    assert any((meta.duration_s or 0) > 86_400 for meta in result.found.values()), "sample needs a P1D..."
    assert all(meta.published_at and meta.published_at.tzinfo == UTC for meta in result.found.values())


@pytest.mark.parametrize(("count", "requests"), [(50, 1), (51, 2), (120, 3), (150, 3)])
async def test_api_mode_batches_ids_by_50(fake: FakeYouTube, count: int, requests: int) -> None:
    """Ids go out in videos.list requests of at most 50 (120 ids: 3 requests), each video served once."""
    ids = video_ids(count)
    async with youtube_client(fake) as (client, _):
        result = await client.fetch(ids)

    assert len(result.found) == count
    assert fake.requests == requests
    assert fake.requests_per_id == dict.fromkeys(ids, 1)


async def test_api_mode_reports_private_and_deleted_as_unavailable(fake: FakeYouTube) -> None:
    """Ids absent from `items` (private, deleted) are unavailable with a reason; the rest are found."""
    ids = ["prvate00001", "deleted0001", "vid00000001"]
    async with youtube_client(fake) as (client, _):
        result = await client.fetch(ids)

    assert result.unavailable == {"prvate00001": REASON_NOT_FOUND_API, "deleted0001": REASON_NOT_FOUND_API}
    assert set(result.found) == {"vid00000001"}
    assert result.transient == {}


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_malformed_and_duplicate_ids_cost_no_extra_requests(fake: FakeYouTube, api: bool) -> None:
    """A malformed id is unavailable without a request; a repeated id is fetched once."""
    ids = ["vid00000001", "vid00000001", "short", "has,comma01", "vid00000002"]
    async with youtube_client(fake, api=api) as (client, _):
        result = await client.fetch(ids)

    assert result.unavailable == {"short": REASON_INVALID_ID, "has,comma01": REASON_INVALID_ID}
    assert set(result.found) == {"vid00000001", "vid00000002"}
    assert fake.requests == (1 if api else 2)
    assert fake.requests_per_id == {"vid00000001": 1, "vid00000002": 1}


async def test_batch_size_and_mode_follow_the_api_key() -> None:
    """A key selects the Data API with batches of 50; no (or an empty) key selects oEmbed, 4 ids per slot."""
    async with httpx.AsyncClient() as http:
        api = YouTubeClient(http, api_key="k")
        oembed = YouTubeClient(http, api_key="", concurrency=3)
    assert (api.mode, api.batch_size) == ("api", 50)
    assert (oembed.mode, oembed.batch_size) == ("oembed", 12)


async def test_a_listed_video_nobody_can_watch_is_unavailable_with_youtubes_reason(fake: FakeYouTube) -> None:
    """An item YouTube still lists as rejected (with its reason) is unavailable, saying why; a vanished or
    private one is not listed at all; the others are found, all in one request."""
    ids = video_ids(5)
    fake.block(ids[:1], reason="termsOfUse")
    fake.block(ids[1:2], reason="uploaderAccountClosed")
    fake.vanish(ids[2:3])
    fake.make_private(ids[3:4])
    async with youtube_client(fake) as (client, _):
        result = await client.fetch(ids)

    assert fake.requests == 1
    assert result.unavailable == {
        ids[0]: "video was removed by YouTube (a terms of use violation)",
        ids[1]: "video was removed by YouTube (the uploader's account was closed)",
        ids[2]: REASON_NOT_FOUND_API,
        ids[3]: REASON_NOT_FOUND_API,
    }
    assert set(result.found) == {ids[4]}

    fake.restore(ids[:4])
    async with youtube_client(fake) as (client, _):
        assert set((await client.fetch(ids)).found) == set(ids)


async def test_every_data_api_request_spends_first_and_a_refusal_stops_the_fetch(fake: FakeYouTube) -> None:
    """`spend` is awaited before each Data API request, retries included; when it raises, the fetch ends
    with that error and sends nothing more; oEmbed never spends."""

    class Spent(Exception):
        pass

    spent: list[int] = []

    async def spend() -> None:
        if len(spent) == 3:
            raise Spent
        spent.append(fake.requests)

    fake.fail_next(1, status=503)
    async with youtube_client(fake, spend=spend) as (client, sleep):
        await client.fetch(video_ids(50))  # a 503, then its retry
        assert (spent, len(sleep.delays)) == ([0, 1], 1)
        await client.fetch(video_ids(50))
        with pytest.raises(Spent):
            await client.fetch(video_ids(50))
    assert fake.requests == 3
    async with youtube_client(fake, api=False, spend=spend) as (client, _):
        await client.fetch(video_ids(2))
    assert fake.stats()["oembed_requests"] == 2


# ---- oEmbed mode ----


async def test_oembed_mode_maps_what_oembed_offers(fake: FakeYouTube) -> None:
    """oEmbed gives title, channel name and the hq thumbnail; the fields it lacks are None."""
    async with youtube_client(fake, api=False) as (client, _):
        result = await client.fetch(["vid00000001"])

    expected = fake.expected("vid00000001")
    meta = result.found["vid00000001"]
    assert (meta.youtube_id, meta.title, meta.channel_title) == (
        "vid00000001",
        expected["title"],
        expected["channel_title"],
    )
    assert meta.thumbnail_url == "https://i.ytimg.com/vi/vid00000001/hqdefault.jpg"
    assert (meta.channel_id, meta.duration_s, meta.published_at, meta.view_count) == (None, None, None, None)


async def test_oembed_mode_maps_404_and_401_to_unavailable(fake: FakeYouTube) -> None:
    """oEmbed's 404 means deleted and 401 means private; both are permanent, neither is retried."""
    async with youtube_client(fake, api=False) as (client, sleep):
        result = await client.fetch(["deleted0001", "prvate00001", "vid00000001"])

    assert result.unavailable == {"deleted0001": REASON_NOT_FOUND, "prvate00001": REASON_PRIVATE}
    assert set(result.found) == {"vid00000001"}
    assert sleep.delays == []
    assert fake.requests == 3


async def test_oembed_concurrency_never_exceeds_the_limit(fake: FakeYouTube) -> None:
    """With 30 slow oEmbed lookups and concurrency 3, the fake sees exactly 3 requests in flight at most."""
    fake.latency_ms = 40
    async with youtube_client(fake, api=False, concurrency=3) as (client, _):
        result = await client.fetch(video_ids(30))

    assert len(result.found) == 30
    assert fake.max_in_flight == 3


async def test_oembed_retries_server_errors_then_succeeds(fake: FakeYouTube) -> None:
    """Two oEmbed 503s are retried with backoff and the video is still found."""
    fake.fail_next(2, status=503)
    async with youtube_client(fake, api=False, backoff_base_s=1.0) as (client, sleep):
        result = await client.fetch(["vid00000001"])

    assert set(result.found) == {"vid00000001"}
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 1.0
    assert 0 <= sleep.delays[1] <= 2.0


async def test_every_id_lands_in_exactly_one_outcome(fake: FakeYouTube) -> None:
    """Mixed ids and injected failures still put each id in exactly one of found/unavailable/transient."""
    ids = [*video_ids(12), "prvate00001", "deleted0001", "bad id", "vid00000003"]
    fake.fail_next(3, status=500)
    async with youtube_client(fake, api=False, max_attempts=1) as (client, _):
        result = await client.fetch(ids)

    assert_partitioned(result, ids)
    assert len(result.transient) == 3
    assert len(result.unavailable) == 3


# ---- retries and transient failures ----


async def test_rate_limit_burst_then_success_honours_retry_after(fake: FakeYouTube) -> None:
    """Three 429s with Retry-After: 2 make the client wait exactly 2 s each time, then it succeeds."""
    fake.fail_next(3, status=429, retry_after=2)
    async with youtube_client(fake) as (client, sleep):
        result = await client.fetch(video_ids(10))

    assert len(result.found) == 10
    assert sleep.delays == [2.0, 2.0, 2.0]
    assert fake.requests == 4


async def test_retry_after_is_capped_by_backoff_max(fake: FakeYouTube) -> None:
    """A Retry-After longer than backoff_max_s is shortened to backoff_max_s."""
    fake.fail_next(1, status=503, retry_after=120)
    async with youtube_client(fake, backoff_max_s=7.0) as (client, sleep):
        result = await client.fetch(video_ids(1))

    assert len(result.found) == 1
    assert sleep.delays == [7.0]


async def test_rate_limit_exceeded_403_is_retried_not_fatal(fake: FakeYouTube) -> None:
    """A 403 rateLimitExceeded is throttling, not a refusal: it is retried and the batch succeeds."""
    fake.fail_next(2, status=403, reason="rateLimitExceeded")
    async with youtube_client(fake) as (client, sleep):
        result = await client.fetch(video_ids(5))

    assert len(result.found) == 5
    assert len(sleep.delays) == 2


async def test_server_errors_on_every_request_exhaust_retries_then_raise_unreachable(
    fake: FakeYouTube,
) -> None:
    """Persistent 500s get max_attempts tries per request with jittered, capped backoff; when no request of
    the fetch got through, YouTube is unreachable: the fetch raises instead of failing the videos."""
    fake.fail_next(100, status=500)
    ids = video_ids(60)
    async with youtube_client(fake, max_attempts=4, backoff_base_s=1.0, backoff_max_s=3.0) as (client, sleep):
        with pytest.raises(YouTubeUnreachable) as raised:
            await client.fetch(ids)

    assert "HTTP 500" in raised.value.last_failure
    assert "4 attempts" in raised.value.last_failure
    assert str(raised.value).startswith("YouTube could not be reached")
    assert fake.requests == 8  # two batches, four attempts each
    ceilings = [1.0, 2.0, 3.0] * 2
    assert len(sleep.delays) == len(ceilings)
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleep.delays, ceilings, strict=True))
    assert sleep.delays != ceilings, "full jitter draws below the ceiling"


async def test_server_errors_go_transient_when_other_requests_succeed(fake: FakeYouTube) -> None:
    """A request still failing after its retries while another request of the fetch succeeds is not an
    outage: its videos are transient ("temporarily unavailable"), the others found."""
    fake.fail_next(3, status=503, retry_after=0)
    ids = video_ids(60)
    async with youtube_client(fake, max_attempts=3) as (client, _sleep):
        result = await client.fetch(ids)

    assert set(result.transient) == set(ids[:50])
    assert "HTTP 503" in result.transient[ids[0]]
    assert set(result.found) == set(ids[50:])


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_timeouts_on_every_request_are_retried_then_unreachable(fake: FakeYouTube, api: bool) -> None:
    """Answers slower than the client's timeout count as failed attempts; when all time out, YouTube is
    unreachable."""
    fake.slow_next(100, 0.5)
    async with youtube_client(fake, api=api, timeout=0.1, max_attempts=2) as (client, sleep):
        with pytest.raises(YouTubeUnreachable) as raised:
            await client.fetch(video_ids(3))

    assert "timed out" in raised.value.last_failure
    assert len(sleep.delays) == (1 if api else 3)


class SteppingClock:
    """Stands in for time.monotonic: every reading is `step_s` later than the one before."""

    def __init__(self, step_s: float) -> None:
        self.now = 0.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_an_outage_is_told_within_the_retry_budget(fake: FakeYouTube, api: bool) -> None:
    """Retries stop once the fetch's retry budget is spent (however many attempts are left), and once
    it is spent with nothing through, the remaining oEmbed ids are not even tried."""
    fake.fail_next(1000, status=503, retry_after=0)
    clock = SteppingClock(step_s=10.0)  # each look at the clock: 10 s later
    options: dict[str, Any] = {"max_attempts": 50, "retry_budget_s": 30.0, "clock": clock, "concurrency": 1}
    async with youtube_client(fake, api=api, **options) as (client, _sleep):
        with pytest.raises(YouTubeUnreachable) as raised:
            await client.fetch(video_ids(4))

    # The deadline is read at 10 s (+30 s = 40 s); after each attempt the clock says 20, 30, then 40 s
    # (oEmbed reads it once more before its first attempt: 2 attempts).
    assert fake.requests == (3 if api else 2), "the budget allows so many attempts here, not 50"
    expected = "gave up after 3 attempts" if api else "YouTube did not answer in time; not tried"
    assert expected in raised.value.last_failure


async def test_connection_errors_on_every_request_raise_unreachable() -> None:
    """When nothing listens at the API's address, the fetch raises YouTubeUnreachable (never the key)."""
    port = free_port()
    sleep = RecordingSleep()
    async with httpx.AsyncClient(timeout=1.0) as http:
        client = YouTubeClient(
            http, api_key="SECRET-KEY-42", api_url=f"http://127.0.0.1:{port}/v3", max_attempts=2, sleep=sleep
        )
        with pytest.raises(YouTubeUnreachable) as raised:
            await client.fetch(["vid00000001"])

    assert "could not reach YouTube" in raised.value.last_failure
    assert "SECRET-KEY-42" not in str(raised.value)
    assert len(sleep.delays) == 1


# ---- hostile answers ----


async def test_every_hostile_value_is_cleaned_or_fails_its_video_alone(fake: FakeYouTube) -> None:
    """One item of each hostile kind in a batch of 50: control characters are stripped, texts capped,
    out-of-range numbers and dates nulled, bad channel ids, off-host thumbnails and bad ports dropped; the
    item that does not decode is unreadable and the one answering for another id not found, alone; the
    others map exactly."""
    hostile = [f"{kind}{index:08d}" for index, kind in enumerate(HOSTILE_KINDS)]
    ids = hostile + video_ids(50 - len(hostile))
    async with youtube_client(fake) as (client, sleep):
        result = await client.fetch(ids)

    assert fake.requests == 1, "one request: nothing was retried"
    assert sleep.delays == []
    assert_partitioned(result, ids)
    assert result.transient == {}
    assert result.unavailable == {"zid00000005": REASON_NOT_FOUND_API}  # answered for another id
    assert result.unreadable == {"zsu00000006": REASON_UNREADABLE}
    for video_id, meta in result.found.items():
        assert msgspec.structs.asdict(meta) == FakeYouTube.expected(video_id), video_id
    assert result.found["zcc00000000"].title == "Video zcc00000000"
    assert len(result.found["zln00000001"].title) == 1000


async def test_hostile_oembed_answers_are_cleaned(fake: FakeYouTube) -> None:
    """oEmbed's title loses its control characters and is capped; a javascript: thumbnail is dropped."""
    async with youtube_client(fake, api=False) as (client, _sleep):
        result = await client.fetch(["zcc00000000", "zln00000001", "zth00000007", "zpt00000008"])

    assert result.found["zcc00000000"].title == "Video zcc00000000"
    assert result.found["zln00000001"].title == "T" * 999 + "…"
    assert result.found["zth00000007"].thumbnail_url is None
    assert result.found["zth00000007"].title == oembed_body("zth00000007")["title"]
    assert result.found["zpt00000008"].thumbnail_url is None


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_an_item_that_fails_to_convert_fails_its_video_alone(
    fake: FakeYouTube, monkeypatch: pytest.MonkeyPatch, api: bool
) -> None:
    """An error while converting one video's item (a value no cleaner foresaw) makes that id unreadable
    with a readable reason; the batch's other videos are found."""
    real = yt._safe_thumbnail

    def breaks_on_one(url: str | None) -> str | None:
        if url and "vid00000001" in url:
            raise ValueError("a value no cleaner foresaw")
        return real(url)

    monkeypatch.setattr(yt, "_safe_thumbnail", breaks_on_one)
    async with youtube_client(fake, api=api) as (client, _sleep):
        result = await client.fetch(video_ids(3))

    assert result.unreadable == {"vid00000001": REASON_UNREADABLE}
    assert set(result.found) == {"vid00000000", "vid00000002"}
    assert_partitioned(result, video_ids(3))


async def test_an_answer_without_items_is_unreadable_not_a_verdict(fake: FakeYouTube) -> None:
    """A 200 answer with no `items` key says nothing about the videos: after its retries they are
    transient (no answer), not "not found"."""
    fake.fail_next(5, status=200, retry_after=0)  # the injected body is an error envelope: no `items`
    async with youtube_client(fake) as (client, _sleep):
        result = await client.fetch(video_ids(3))

    assert result.unavailable == {}
    assert set(result.transient) == set(video_ids(3))
    assert "unreadable response" in result.transient["vid00000000"]


async def test_an_id_listed_twice_keeps_its_first_verdict() -> None:
    """A `videos.list` answer listing an id twice (found, then removed) puts it in one outcome only."""
    listed = {"kind": "youtube#video", "id": "vid00000001", "snippet": {"title": "First"}}
    removed = {**listed, "status": {"uploadStatus": "rejected", "rejectionReason": "copyright"}}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"items": [listed, removed]}))
    async with httpx.AsyncClient(transport=transport) as http:
        result = await YouTubeClient(http, api_key="k").fetch(["vid00000001"])

    assert result.found["vid00000001"].title == "First"
    assert_partitioned(result, ["vid00000001"])


async def test_error_texts_from_youtube_are_cleaned(fake: FakeYouTube) -> None:
    """Reasons and messages of YouTube's error answers lose their control characters (NUL included,
    which the database refuses) before they reach a job's message or a video's error."""
    fake.fail_next(1, status=400, reason="odd\x00Reason\x07")
    async with youtube_client(fake) as (client, _sleep):
        with pytest.raises(YouTubeError) as raised:
            await client.fetch(video_ids(2))
        fake.fail_next(5, status=429, reason="slow\x00Down", retry_after=0)
        throttled = await client.fetch(video_ids(2))

    assert raised.value.reason == "oddReason"
    assert str(raised.value) == (
        "YouTube API request failed with HTTP 400 (oddReason: Injected failure: oddReason)"
    )
    assert "\x00" not in throttled.transient["vid00000000"]
    assert "slowDown, HTTP 429" in throttled.transient["vid00000000"]


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_an_answer_that_trickles_in_times_out_as_a_whole(fake: FakeYouTube, api: bool) -> None:
    """A server sending its answer a byte at a time never trips httpx's per-read timeout; the request's
    total deadline ends it, and it counts as a timeout (an outage when nothing else got through)."""
    fake.trickle_next(2, interval_s=0.02)  # about 14 s for an oEmbed body, far longer for the API's
    async with youtube_client(fake, api=api, max_attempts=2, request_timeout_s=0.3) as (client, sleep):
        with pytest.raises(YouTubeUnreachable) as raised:
            await client.fetch(video_ids(1))

    assert raised.value.last_failure == "request to YouTube timed out (gave up after 2 attempts)"
    assert len(sleep.delays) == 1


@pytest.mark.parametrize("api", [True, False], ids=["api", "oembed"])
async def test_an_oversized_answer_is_given_up_not_read(fake: FakeYouTube, api: bool) -> None:
    """An answer past the size cap is not read into memory: it is an unreadable answer, retried, then the
    ids are transient (not "not found")."""
    fake.oversize_next(4, size_bytes=1024 * 1024)  # two attempts for each of two ids (oEmbed)
    async with youtube_client(fake, api=api, max_attempts=2, max_body_bytes=64 * 1024) as (client, _):
        result = await client.fetch(video_ids(2))

    assert result.found == {} and result.unavailable == {}
    assert set(result.transient) == set(video_ids(2))
    assert "too large to read" in result.transient["vid00000000"]


# ---- job-stopping errors ----


async def test_quota_exhaustion_raises_and_stops_requesting(fake: FakeYouTube) -> None:
    """After the quota runs out the client raises quotaExceeded at once: no retry, no further batch."""
    fake.quota_after(1)
    async with youtube_client(fake) as (client, sleep):
        with pytest.raises(YouTubeError, match="quota") as raised:
            await client.fetch(video_ids(150))

    assert raised.value.reason == "quotaExceeded"
    assert raised.value.status == 403
    assert fake.requests == 2
    assert sleep.delays == []


async def test_invalid_key_raises_key_invalid_without_leaking_it(fake: FakeYouTube) -> None:
    """A wrong key raises keyInvalid and the key itself appears in no part of the error."""
    secret = "wrong-key-S3CR3T"
    async with youtube_client(fake, api_key=secret) as (client, sleep):
        with pytest.raises(YouTubeError) as raised:
            await client.fetch(video_ids(3))

    assert raised.value.reason == "keyInvalid"
    assert "key" in str(raised.value)
    assert secret not in f"{raised.value} {raised.value!r} {raised.value.args}"
    assert sleep.delays == []


async def test_key_never_appears_in_messages_or_request_logs(
    fake: FakeYouTube, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither httpx's request log, nor an outage, nor transient reasons, nor a quota error contain the
    API key."""
    fake.api_key = "valid-S3CR3T-key"
    fake.fail_next(2, status=500)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the app's logging config keeps it at WARNING
    async with youtube_client(fake, max_attempts=2) as (client, _):
        with pytest.raises(YouTubeUnreachable) as outage:
            await client.fetch(video_ids(3))
        fake.fail_next(2, status=429)
        transient = await client.fetch(video_ids(3))
        fake.quota_after(0)
        with pytest.raises(YouTubeError) as raised:
            await client.fetch(video_ids(3))

    assert transient.transient
    assert all(fake.api_key not in reason for reason in transient.transient.values())
    assert fake.api_key not in f"{outage.value} {outage.value!r} {outage.value.last_failure}"
    assert fake.api_key not in f"{raised.value} {raised.value!r}"
    assert "HTTP Request" in caplog.text, "httpx must have logged the requests for this check to mean much"
    assert fake.api_key not in caplog.text


async def test_unexpected_api_error_stops_the_job_with_its_status(fake: FakeYouTube) -> None:
    """An error the client does not know (a 404 from a misconfigured API URL) raises, naming the status."""
    async with youtube_client(fake, api_url=fake.base_url + "/not-the-api") as (client, sleep):
        with pytest.raises(YouTubeError, match="HTTP 404"):
            await client.fetch(["vid00000001"])

    assert sleep.delays == []


async def test_current_google_error_shape_for_bad_key_is_recognised() -> None:
    """Google's newer body (reason badRequest + ErrorInfo API_KEY_INVALID) still means keyInvalid."""
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "errors": [{"message": "API key not valid.", "domain": "global", "reason": "badRequest"}],
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ],
        }
    }
    transport = httpx.MockTransport(lambda _: httpx.Response(400, json=body))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(YouTubeError) as raised:
            await YouTubeClient(http, api_key="k").fetch(["vid00000001"])
    assert raised.value.reason == "keyInvalid"


# ---- duration parsing (unit) ----


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT15S", 15),
        ("PT4M13S", 253),
        ("PT1H2M3S", 3_723),
        ("PT1H", 3_600),
        ("PT10M", 600),
        ("P1DT2H", 93_600),
        ("P2DT3M", 172_980),
        ("P1W", 604_800),
        ("PT1.6S", 2),
        ("P0D", None),  # live stream or unfinished premiere
        ("PT0S", None),
        ("", None),
        (None, None),
        ("P", None),
        ("PT", None),
        ("P1DT", None),
        ("1H", None),
        ("PT-5S", None),
        ("P1M", None),  # a month: ambiguous length, never sent by YouTube
        ("P1Y2M", None),
        ("garbage", None),
    ],
)
def test_parse_iso8601_duration(text: str | None, seconds: int | None) -> None:
    """YouTube's ISO 8601 durations map to seconds; zero and anything unparseable map to None."""
    assert parse_iso8601_duration(text) == seconds


@given(st.integers(min_value=1, max_value=10**8))
def test_parse_iso8601_duration_inverts_youtubes_format(seconds: int) -> None:
    """Any positive duration formatted the way YouTube does parses back to the same seconds."""
    assert parse_iso8601_duration(format_iso8601_duration(seconds)) == seconds


@given(st.text(max_size=30))
def test_parse_iso8601_duration_never_raises(text: str) -> None:
    """Arbitrary text yields None or a positive int, never an exception."""
    parsed = parse_iso8601_duration(text)
    assert parsed is None or parsed > 0


# ---- the fake's controls, as other processes use them ----


async def test_fake_is_configurable_over_http(fake: FakeYouTube) -> None:
    """POST /_control injects failures and GET /_stats reports counters, for fakes in other processes."""
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=5.0) as http:
        control = await http.post("/_control", json={"fail_next": {"n": 1, "status": 429}})
        assert control.status_code == 200
        async with youtube_client(fake, max_attempts=1) as (client, _):
            result = await client.fetch(["vid00000001"])
        assert "HTTP 429" in result.transient["vid00000001"]
        stats = (await http.get("/_stats")).json()
        assert (stats["requests"], stats["requests_per_id"]) == (1, {})
        reset = (await http.post("/_control", json={"reset": True})).json()
        assert reset["requests"] == 0


async def test_the_fakes_catalog_changes_over_http(fake: FakeYouTube) -> None:
    """POST /_control makes videos vanish, turn private, be removed, come back and change, as an
    availability check would find them; `reset` clears failures but keeps those changes."""
    ids = video_ids(5)
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=5.0) as http:
        command = {
            "vanish": ids[:1],
            "private": ids[1:2],
            "block": {"ids": ids[2:3], "reason": "legal"},
            "update": {"id": ids[3], "title": "Renamed", "view_count": 7},
        }
        assert (await http.post("/_control", json=command)).status_code == 200
        assert (await http.post("/_control", json={"reset": True})).status_code == 200
        async with youtube_client(fake) as (client, _):
            changed = await client.fetch(ids)
        await http.post("/_control", json={"restore": ids[:3]})
        async with youtube_client(fake) as (client, _):
            restored = await client.fetch(ids)

    assert changed.unavailable == {
        ids[0]: REASON_NOT_FOUND_API,
        ids[1]: REASON_NOT_FOUND_API,
        ids[2]: "video was removed by YouTube (legal reasons)",
    }
    assert (changed.found[ids[3]].title, changed.found[ids[3]].view_count) == ("Renamed", 7)
    assert set(restored.found) == set(ids)
    assert restored.found[ids[3]].title == "Renamed", "restore brings a video back, not its old title"


def test_fake_runs_as_a_module_until_sigterm() -> None:
    """`python -m testkit.fake_youtube` prints its URL when ready, serves, and exits cleanly on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "testkit.fake_youtube", "--port", "0", "--latency-ms", "1"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        stats = httpx.get(match.group(1) + "/_stats", timeout=5.0)
        assert json.loads(stats.text)["requests"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
