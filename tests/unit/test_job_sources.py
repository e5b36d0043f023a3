"""Job sources are user input (an upload's file name): shown without paths or control characters, bounded."""

from __future__ import annotations

from app.services.jobs import clean_source, plural, retry_source
from db.models import SOURCE_MAX, Job


def test_a_file_name_loses_its_path_and_control_characters_and_is_bounded() -> None:
    """Paths (either slash), control and format characters go; a long name is cut to SOURCE_MAX."""
    assert clean_source("C:\\Users\\me\\my\x07 links\u202e.csv") == "my links.csv"
    assert clean_source("/home/me/\x00") is None
    long = clean_source("x" * 500 + ".csv")
    assert long is not None and len(long) == SOURCE_MAX and long.endswith("…")


def test_a_retry_names_its_origin_once() -> None:
    """A retry of a retry says "retry of links.csv", not "retry of retry of links.csv"."""
    first = Job(kind="import", source="links.csv")
    again = Job(kind="retry", source=retry_source(first, automatic=True))
    assert retry_source(first) == "retry of links.csv"
    assert again.source == "automatic retry of links.csv"
    assert retry_source(again) == "retry of links.csv"


def test_plural_forms() -> None:
    """One video, 2 videos, 1,500 videos."""
    assert [plural(n, "video") for n in (0, 1, 2, 1500)] == [
        "0 videos",
        "1 video",
        "2 videos",
        "1,500 videos",
    ]
