"""Which server releases the health report and metrics warn about (app/pgversion.py)."""

from __future__ import annotations

import pytest

from app.pgversion import ServerVersion


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (180001, "18.1"),
        (180004, "18.4"),
        (170007, "17.7"),
        (160011, "16.11"),
        (150015, "15.15"),
        (150019, "15.19 (Debian 15.19-0+deb12u1)"),
    ],
)
def test_a_supported_release_with_the_notify_fixes_has_no_warning(number: int, text: str) -> None:
    """Each supported branch from its November 2025 release on (and later minors) is fine."""
    assert ServerVersion(number, text).warning is None


@pytest.mark.parametrize(
    ("number", "fixed_in"),
    [(180000, "18.1"), (170006, "17.7"), (160002, "16.11"), (150014, "15.15"), (140019, "14.20")],
)
def test_a_minor_before_the_notify_fixes_is_named_with_the_release_to_take(
    number: int, fixed_in: str
) -> None:
    """A minor older than the fix says what it risks and which release fixes it (16.2: the old embedded one)."""
    warning = ServerVersion(number, "x").warning
    assert warning is not None
    assert "LISTEN/NOTIFY" in warning
    assert f"upgrade to {fixed_in} or later" in warning


@pytest.mark.parametrize(("number", "major"), [(140020, 14), (190000, 19), (130023, 13)])
def test_a_fixed_release_outside_the_tested_range_is_said_to_be_so(number: int, major: int) -> None:
    """14.20 and 13.23 have the fixes but the suite never runs on them; 19 is newer than anything tested."""
    assert ServerVersion(number, "x").warning == f"PostgreSQL {major} is outside the tested range 15-18"


def test_a_pre_10_server_is_far_too_old() -> None:
    """9.6's server_version_num (90624) still parses to a major, and the warning says it is far too old."""
    warning = ServerVersion(90624, "9.6.24").warning
    assert warning is not None
    assert "far too old" in warning


def test_the_health_report_and_metrics_carry_the_version_and_the_warning() -> None:
    """The report shows major.minor and the number; the metrics give the number and a 0/1 warning gauge."""
    old = ServerVersion(160002, "16.2")
    assert old.report() == {"server_version": "16.2", "server_version_num": 160002, "warning": old.warning}
    samples = {name: (labels, value) for name, _, labels, value in old.metric_samples()}
    assert samples["bookmarks_postgres_server_version_num"] == ({"version": "16.2"}, 160002.0)
    assert samples["bookmarks_postgres_version_warning"] == ({}, 1.0)
    fine = ServerVersion(180004, "18.4").metric_samples()
    assert [value for name, _, _, value in fine if name == "bookmarks_postgres_version_warning"] == [0.0]
