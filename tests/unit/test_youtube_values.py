"""The YouTube client's cleaning of single values (no network)."""

from __future__ import annotations

import pytest

from workers.youtube import _safe_thumbnail


@pytest.mark.parametrize(
    "url",
    [
        "https://i.ytimg.com:abc/vi/x.jpg",
        "https://i.ytimg.com:99999/vi/x.jpg",
        "https://i.ytimg.com:0/vi/x.jpg",
        "https://i.ytimg.com:443/vi/x.jpg",
        "https://i.ytimg.com:/vi/x.jpg",
        "https://user@i.ytimg.com/vi/x.jpg",
        "https://user:secret@i.ytimg.com/vi/x.jpg",
        "http://i.ytimg.com/vi/x.jpg",
        "https://i.ytimg.com.evil.example/vi/x.jpg",
        "https://[::1]/vi/x.jpg",
    ],
)
def test_a_thumbnail_with_a_port_userinfo_or_off_youtube_is_dropped_without_raising(url: str) -> None:
    """Any explicit port (even one that is not a number, out of range, or 0), userinfo, plain http or
    another host gives no thumbnail, and never an exception."""
    assert _safe_thumbnail(url) is None


@pytest.mark.parametrize("url", ["https://i.ytimg.com/vi/x/hqdefault.jpg", "https://yt3.ggpht.com/a/b.jpg"])
def test_a_thumbnail_on_youtubes_image_hosts_is_kept(url: str) -> None:
    """An https URL on YouTube's image hosts is kept as sent."""
    assert _safe_thumbnail(url) == url
