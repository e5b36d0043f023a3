"""The dashboard's CSP lets the browser load every thumbnail the YouTube client keeps, and no other host."""

from __future__ import annotations

import pytest

from app.dashboard.routes import CONTENT_SECURITY_POLICY
from workers.thumbnails import THUMBNAIL_HOST_SUFFIXES, THUMBNAIL_HOSTS
from workers.youtube import _safe_thumbnail


def csp_allows_image(host: str) -> bool:
    """Whether the page's img-src lets an https image from `host` load (CSP host-source matching)."""
    directive = next(
        part.split() for part in CONTENT_SECURITY_POLICY.split("; ") if part.startswith("img-src")
    )
    for source in directive[1:]:
        if not source.startswith("https://"):
            continue
        pattern = source.removeprefix("https://")
        if pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


ACCEPTED = sorted(THUMBNAIL_HOSTS) + [f"i7{suffix}" for suffix in THUMBNAIL_HOST_SUFFIXES]


@pytest.mark.parametrize("host", ACCEPTED)
def test_every_host_the_client_keeps_is_allowed_by_the_csp(host: str) -> None:
    """A thumbnail the YouTube client stores (i.ytimg.com, i9.ytimg.com, img.youtube.com, yt3.ggpht.com,
    any *.ytimg.com) is one the browser may load."""
    assert _safe_thumbnail(f"https://{host}/vi/x/hqdefault.jpg") is not None
    assert csp_allows_image(host), CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("host", ["evil.example", "ytimg.com.evil.example", "youtube.com"])
def test_other_hosts_are_neither_kept_nor_allowed(host: str) -> None:
    """A host the client refuses is not in the CSP either."""
    assert _safe_thumbnail(f"https://{host}/x.jpg") is None
    assert not csp_allows_image(host)
