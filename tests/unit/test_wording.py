"""How counts read in messages (app/wording.py): one way everywhere, server and CLI."""

from __future__ import annotations

from app.wording import plural


def test_plural_forms() -> None:
    """One video, 2 videos, 1,500 videos; an irregular plural when given."""
    assert [plural(n, "video") for n in (0, 1, 2, 1500)] == [
        "0 videos",
        "1 video",
        "2 videos",
        "1,500 videos",
    ]
    assert plural(2, "entry", "entries") == "2 entries"
