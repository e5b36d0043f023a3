"""How counts read in messages people see (job messages, import answers, the CLI): "1 video",
"2 videos", "1,000 videos". The one place that writes a count with its noun."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"
