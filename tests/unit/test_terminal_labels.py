"""The terminal client's job labels: what a person recognises, never a colliding id prefix."""

from __future__ import annotations

from app.terminal import EXIT_CODES, JobLabels


def test_labels_name_source_and_list_and_never_collide() -> None:
    """Two imports of the same file into the same list get different labels (start time, then a
    number); a job whose list is gone says so."""
    labels = JobLabels({"l1": "Music"})
    first = {
        "job_id": "0190aaaa-1",
        "list_id": "l1",
        "source": "links.csv",
        "started_at": "2026-12-06T10:00:01.000Z",
    }
    second = first | {"job_id": "0190aaaa-2", "started_at": "2026-12-06T10:05:09.000Z"}
    third = second | {"job_id": "0190aaaa-3"}
    orphan = {"job_id": "0190aaaa-4", "list_id": None, "source": "1 video added"}

    assert labels.label(first) == "links.csv into Music"
    assert labels.label(second) == "links.csv into Music at 10:05:09"
    assert labels.label(third) == "links.csv into Music (2)"
    assert labels.label(orphan) == "1 video added into a deleted list"
    assert labels.label(first) == "links.csv into Music", "a job keeps its label"


def test_exit_codes_are_zero_only_when_every_video_is_ready() -> None:
    """0 for completed; distinct non-zero codes for completed_with_errors and for failed/cancelled."""
    assert EXIT_CODES == {"completed": 0, "completed_with_errors": 3, "failed": 4, "cancelled": 4}
