"""The hosts video thumbnails may come from: YouTube's own image hosts, over https.

One list for the two sides that must agree: the YouTube client keeps only thumbnail URLs on these hosts,
and the dashboard's Content-Security-Policy lets the browser load exactly these (a URL stored but blocked
by the CSP would be a broken picture). Plain data, importable by the web side and the YouTube client
alike (pyproject's import contracts keep the web side out of `workers.youtube`).
"""

from __future__ import annotations

from typing import Final

THUMBNAIL_HOSTS: Final = frozenset({"i.ytimg.com", "i9.ytimg.com", "img.youtube.com", "yt3.ggpht.com"})
THUMBNAIL_HOST_SUFFIXES: Final = (".ytimg.com", ".ggpht.com")
"""Any subdomain of these too (YouTube serves thumbnails from several)."""


def is_thumbnail_host(host: str) -> bool:
    host = host.lower()
    return host in THUMBNAIL_HOSTS or host.endswith(THUMBNAIL_HOST_SUFFIXES)


def csp_image_sources() -> list[str]:
    """CSP source expressions that allow exactly the hosts above: `https://*.ytimg.com` for a suffix, the
    host itself for one no suffix covers."""
    alone = sorted(host for host in THUMBNAIL_HOSTS if not host.endswith(THUMBNAIL_HOST_SUFFIXES))
    return [f"https://{host}" for host in alone] + [
        f"https://*{suffix}" for suffix in THUMBNAIL_HOST_SUFFIXES
    ]
