"""parse_video_ref: every YouTube link form to its video id, everything else to a reason."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.imports.parsing import InvalidVideoRef, parse_import, parse_video_ref

RICK = "dQw4w9WgXcQ"
VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")

VALID_REFS: list[tuple[str, str]] = [
    # watch links, params in any order, with playlists and timestamps
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1m", RICK),
    ("https://www.youtube.com/watch?t=1m&v=dQw4w9WgXcQ", RICK),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&index=2", RICK),
    ("https://www.youtube.com/watch?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&v=dQw4w9WgXcQ", RICK),
    ("https://www.youtube.com/watch?feature=player_embedded&v=dQw4w9WgXcQ#t=30", RICK),
    ("https://www.youtube.com/watch?app=desktop&amp;v=dQw4w9WgXcQ", RICK),
    ("https://www.youtube.com/watch/?v=dQw4w9WgXcQ", RICK),
    ("http://www.youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("https://youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("HTTPS://WWW.YouTube.COM/watch?v=dQw4w9WgXcQ", RICK),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", RICK),
    ("https://www.youtube.com/?v=dQw4w9WgXcQ", RICK),
    # no scheme
    ("youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("www.youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("//www.youtube.com/watch?v=dQw4w9WgXcQ", RICK),
    ("youtu.be/dQw4w9WgXcQ", RICK),
    # short links
    ("https://youtu.be/dQw4w9WgXcQ", RICK),
    ("https://youtu.be/dQw4w9WgXcQ?t=3", RICK),
    ("https://youtu.be/dQw4w9WgXcQ?si=AbCdEf&list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs", RICK),
    ("http://YOUTU.BE/dQw4w9WgXcQ/", RICK),
    # ids in the path
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", RICK),
    ("https://youtube.com/shorts/dQw4w9WgXcQ?feature=share", RICK),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ?start=10", RICK),
    ("https://www.youtube.com/live/dQw4w9WgXcQ?si=x", RICK),
    ("https://www.youtube.com/v/dQw4w9WgXcQ?version=3", RICK),
    ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", RICK),
    ("youtube-nocookie.com/embed/dQw4w9WgXcQ", RICK),
    ("https://www.youtube.com/attribution_link?a=xyz&u=/watch%3Fv%3DdQw4w9WgXcQ%26feature%3Dshare", RICK),
    # bare ids: case-sensitive, leading "-" and "_" allowed
    ("dQw4w9WgXcQ", RICK),
    ("-wtIMTCHWuI", "-wtIMTCHWuI"),
    ("_OBlgSz8sSM", "_OBlgSz8sSM"),
    ("DQW4W9WGXCQ", "DQW4W9WGXCQ"),
    # surrounding noise a paste carries
    ("   https://youtu.be/dQw4w9WgXcQ \t", RICK),
    ("<https://youtu.be/dQw4w9WgXcQ>", RICK),
    ('"https://youtu.be/dQw4w9WgXcQ"', RICK),
    ("\u200bhttps://youtu.be/dQw4w9WgXcQ\ufeff", RICK),
]

INVALID_REFS: list[tuple[str, str]] = [
    ("", "empty"),
    ("   ", "empty"),
    (
        "https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs",
        "playlist links are not supported",
    ),
    (
        "https://www.youtube.com/watch?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs",
        "playlist links are not supported",
    ),
    ("https://www.youtube.com/embed/videoseries?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs", "playlist"),
    ("https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw", "channel links are not supported"),
    ("https://www.youtube.com/c/LinusTechTips", "channel links are not supported"),
    ("https://www.youtube.com/user/RickAstleyVEVO", "channel links are not supported"),
    ("https://www.youtube.com/@RickAstleyYT", "channel links are not supported"),
    ("https://www.youtube.com/@RickAstleyYT/videos", "channel links are not supported"),
    ("https://www.youtube.com/embed/live_stream?channel=UCuAXFkgsw1L7xaCfnd5JJOw", "channel"),
    ("https://www.youtube.com/results?search_query=rick+astley", "search links are not supported"),
    ("https://vimeo.com/76979871", "not a YouTube link (host vimeo.com)"),
    ("https://example.com/watch?v=dQw4w9WgXcQ", "not a YouTube link (host example.com)"),
    ("https://www.youtube.com.evil.example/watch?v=dQw4w9WgXcQ", "not a YouTube link"),
    ("https://notyoutube.com/watch?v=dQw4w9WgXcQ", "not a YouTube link"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXc", "not a valid video id"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQQ", "not a valid video id"),
    ("https://www.youtube.com/watch?v=dQw4w9WgX!Q", "not a valid video id"),
    ("https://youtu.be/tooShort", "not a valid video id"),
    ("https://www.youtube.com/watch?v=", "the v= parameter is empty"),
    ("https://www.youtube.com/watch?t=10", "no v= parameter"),
    ("https://youtu.be/", "no video id"),
    ("https://www.youtube.com/shorts/", "no video id"),
    ("https://www.youtube.com/", "does not point to a video"),
    ("https://www.youtube.com/feed/subscriptions", "does not point to a video"),
    ("dQw4w9WgXc", "not a valid video id"),
    ("dQw4w9WgXcQQ", "not a valid video id"),
    ("dQw4w9WgX Q", "not a valid video id"),
    ("hello world", "not a valid video id"),
    ('=HYPERLINK("https://youtu.be/dQw4w9WgXcQ")', "spreadsheet formulas are not accepted"),
    ('=HYPERLINK("https://youtu.be/dQw4w9WgXcQ";"Rick")', "spreadsheet formulas are not accepted"),
    ("ftp://youtube.com/watch?v=dQw4w9WgXcQ", "not a web link"),
    ("javascript:alert(1)", "not a valid video id or YouTube link"),
    ("http://[::1/watch?v=dQw4w9WgXcQ", "not a valid link"),
]


@pytest.mark.parametrize(("ref", "expected_id"), VALID_REFS)
def test_parse_video_ref_extracts_the_id_from_every_youtube_form(ref: str, expected_id: str) -> None:
    """Each supported link form, with or without scheme and extra params, yields the exact id."""
    assert parse_video_ref(ref) == expected_id


@pytest.mark.parametrize(("ref", "reason"), INVALID_REFS)
def test_parse_video_ref_rejects_non_videos_with_a_reason(ref: str, reason: str) -> None:
    """Playlists, channels, searches, other hosts, bad ids and formulas are refused, each saying why."""
    with pytest.raises(InvalidVideoRef, match=re.escape(reason)):
        parse_video_ref(ref)


def test_the_table_covers_at_least_forty_forms() -> None:
    """The URL table stays broad: at least 40 valid and invalid cases together."""
    assert len(VALID_REFS) + len(INVALID_REFS) >= 40


def test_parse_video_ref_never_changes_the_case_of_an_id() -> None:
    """Ids are case-sensitive, even when the host in the same link is upper case."""
    assert parse_video_ref("HTTPS://YOUTU.BE/aBcDeFgHiJk") == "aBcDeFgHiJk"


def test_invalid_video_ref_is_a_value_error() -> None:
    """Callers that only know ValueError still catch a bad reference."""
    assert issubclass(InvalidVideoRef, ValueError)


# ---------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------

LINK_FORMS = [
    "{}",
    "https://www.youtube.com/watch?v={}",
    "https://www.youtube.com/watch?v={}&t=1m",
    "https://www.youtube.com/watch?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&v={}&index=3",
    "http://youtube.com/watch?v={}",
    "youtube.com/watch?v={}",
    "www.youtube.com/watch/?v={}",
    "https://m.youtube.com/watch?v={}",
    "https://music.youtube.com/watch?v={}&feature=share",
    "https://youtu.be/{}",
    "youtu.be/{}?t=3",
    "https://www.youtube.com/shorts/{}",
    "https://www.youtube.com/embed/{}?start=1",
    "https://www.youtube-nocookie.com/embed/{}",
    "https://www.youtube.com/live/{}",
    "https://www.youtube.com/v/{}",
    "  https://youtu.be/{}  ",
]
# Real ids, but YouTube reads /embed/videoseries and /embed/live_stream as a playlist and a channel stream.
RESERVED_EMBED_WORDS = {"videoseries", "live_stream"}
video_ids = st.from_regex(VIDEO_ID, fullmatch=True).filter(
    lambda video_id: video_id not in RESERVED_EMBED_WORDS
)


def parse_or_reason(text: str) -> str | InvalidVideoRef:
    try:
        return parse_video_ref(text)
    except InvalidVideoRef as error:
        return error


@settings(max_examples=300, database=None)
@given(st.text(max_size=300))
def test_parse_video_ref_returns_a_valid_id_or_raises_invalid_video_ref(text: str) -> None:
    """On any text at all, the result is an 11-character id or an InvalidVideoRef, never another error."""
    outcome = parse_or_reason(text)

    if isinstance(outcome, InvalidVideoRef):
        assert str(outcome)
    else:
        assert VIDEO_ID.fullmatch(outcome)


link_like_text = st.lists(
    st.sampled_from(
        [
            "https://",
            "http:",
            "//",
            "youtu.be/",
            "youtube.com",
            "www.",
            "m.",
            "/watch",
            "?v=",
            "&v=",
            "&list=PL1",
            "/shorts/",
            "/embed/",
            "attribution_link?u=",
            "%3Fv%3D",
            "/",
            "?",
            "&",
            "=",
            "#",
            "@",
            "[",
            "]",
            ":",
            " ",
            "\t",
            RICK,
            "abc",
            "é",
            "\u200b",
            "%",
            "+",
            ".",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, database=None)
@given(link_like_text)
def test_parse_video_ref_on_link_fragments_returns_a_valid_id_or_a_reason(text: str) -> None:
    """Near-miss links built from URL fragments still end in an id or an InvalidVideoRef."""
    outcome = parse_or_reason(text)

    if isinstance(outcome, InvalidVideoRef):
        assert str(outcome)
    else:
        assert VIDEO_ID.fullmatch(outcome)


@settings(max_examples=300, database=None)
@given(video_ids, st.sampled_from(LINK_FORMS))
def test_every_link_form_round_trips_any_valid_id(video_id: str, form: str) -> None:
    """Whatever the id's characters, wrapping it in any supported form gives it back unchanged."""
    assert parse_video_ref(form.format(video_id)) == video_id


@settings(max_examples=300, database=None)
@given(st.lists(st.tuples(video_ids, st.sampled_from(LINK_FORMS)), max_size=40))
def test_a_pasted_list_of_links_gives_back_the_unique_ids_in_order(links: list[tuple[str, str]]) -> None:
    """One link per line, in random forms, parses to exactly the unique ids in first-seen order."""
    data = "\n".join(form.format(video_id) for video_id, form in links).encode()
    expected = list(dict.fromkeys(video_id for video_id, _ in links))

    result = parse_import(data)

    assert result.video_ids == expected
    assert result.duplicates == len(links) - len(expected)
    assert result.invalid == []
    assert result.rows == len(links)
