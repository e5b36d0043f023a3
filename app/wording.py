"""How counts read in messages people see (job messages, the CLI): "1 video", "2 videos"."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"
