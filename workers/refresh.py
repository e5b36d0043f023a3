"""Checking a list's videos again (a `refresh` job, "Check availability"): what changed, what is gone, what
came back.

It runs in the shared runner (workers/processing.py, `Work`) and walks the list's ready and unavailable
videos not checked since the job began (`jobs.stale_before`), in row id order. Each batch's transaction
writes the videos, the job's counts and its keyset (`jobs.refresh_after`) together, so a rerun after a
crash continues after the last committed batch and counts nothing twice.

- Found: title, channel, view count, thumbnail and the rest are updated; a value YouTube does not send
  (oEmbed has no view count) keeps the stored one, and so does a thumbnail from oEmbed (always its small
  one). A new title or channel name counts as `changed`: view counts move every day, and a thumbnail
  replaced by its owner keeps its URL, so neither says anything by itself (both are still stored). An
  unavailable video found again is `ready`: `returned`.
- Unavailable (deleted, private, removed by YouTube): a ready video becomes `unavailable` with YouTube's
  reason and `unavailable_since`, its metadata kept: `gone`. One already unavailable keeps its `since`.
- No answer (YouTube failing for that request), or an answer that could not be read (an item that does
  not decode, an answer without `items`): the video is left as it was and not marked checked; it counts
  as `failed`, and the job's Retry checks it again. Only YouTube's own verdict makes a video `gone`.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.services import jobs as job_service
from app.services.jobs import NOTHING_BEFORE
from app.wording import plural
from db.models import ERROR_MAX, Job, Video, VideoStatus
from db.queries import queries
from workers.processing import Applied, in_batch_order, metadata_values, write_rows
from workers.youtube import FetchResult, VideoMetadata

VIDEOS = cast(Table, Video.__table__)
COMPARED = ("title", "channel_title")
"""What a person sees change: a new value of one of these makes the video `changed`."""


def _kept_unless_sent(name: str) -> Any:
    """The new value, or the stored one when YouTube sent none (oEmbed knows no views or duration)."""
    column = VIDEOS.c[name]
    return func.coalesce(bindparam(name, type_=column.type), column)


def found_statement() -> Any:
    """UPDATE of a video YouTube still has: fresh metadata, `ready`, checked now."""
    kept = ("channel_title", "channel_id", "duration_s", "published_at", "thumbnail_url", "view_count")
    return (
        update(VIDEOS)
        .where(Video.id == bindparam("b_id"))
        .values(
            title=bindparam("title"),
            **{name: _kept_unless_sent(name) for name in kept},
            status=VideoStatus.READY.value,
            error=None,
            unavailable_since=None,
            checked_at=func.now(),
            updated_at=func.now(),
        )
    )


def gone_statement() -> Any:
    """UPDATE of a video YouTube says nobody can watch: `unavailable` since its first such check."""
    return (
        update(VIDEOS)
        .where(Video.id == bindparam("b_id"))
        .values(
            status=VideoStatus.UNAVAILABLE.value,
            error=bindparam("error"),
            unavailable_since=func.coalesce(Video.unavailable_since, func.now()),
            checked_at=func.now(),
            updated_at=func.now(),
        )
    )


def is_changed(stored: Any, meta: VideoMetadata) -> bool:
    fresh = metadata_values(meta)
    return any(fresh[name] is not None and fresh[name] != getattr(stored, name) for name in COMPARED)


def findings(job: Job) -> str:
    """ "3 gone, 1 back, 12 changed" (only what happened), or "" when nothing did."""
    parts = [
        f"{count:,} {word}"
        for count, word in ((job.gone, "gone"), (job.returned, "back"), (job.changed, "changed"))
        if count
    ]
    return ", ".join(parts)


class RefreshWork:
    """The `Work` of a refresh job."""

    async def recount(self, session: AsyncSession, job: Job) -> None:
        """Its counts are its own (the videos are not its): only the total moves, to what it has checked
        plus what it has left."""
        remaining = 0
        if job.list_id is not None and job.stale_before is not None:
            remaining = await job_service.refresh_remaining(
                session, job.list_id, job.stale_before, job.refresh_after
            )
        job.total = job.processed + remaining

    async def next_batch(
        self, session: AsyncSession, job: Job, size: int, *, after: UUID | None
    ) -> dict[str, UUID]:
        if job.list_id is None or job.stale_before is None:
            return {}
        connection = await session.connection()
        rows = await connection.exec_driver_sql(
            queries["refresh_batch"],
            (job.list_id, job.stale_before, after or job.refresh_after or NOTHING_BEFORE, size),
        )
        return dict(rows.tuples().all())

    async def apply(
        self, session: AsyncSession, job: Job, batch: dict[str, UUID], result: FetchResult
    ) -> Applied:
        """Only the batch's videos that are still the check's (not deleted, not checked by another run)
        are written, locked first: the counts move by exactly those."""
        assert job.list_id is not None
        assert job.stale_before is not None
        connection = await session.connection()
        locked = (
            await connection.exec_driver_sql(
                queries["lock_refresh_batch"], (job.list_id, job.stale_before, list(batch.values()))
            )
        ).all()
        found: dict[str, dict[str, Any]] = {}
        gone: dict[str, dict[str, Any]] = {}
        changed = returned = went = 0
        for stored in locked:
            youtube_id = stored.youtube_id
            meta = result.found.get(youtube_id)
            if meta is not None:
                found[youtube_id] = {"b_id": stored.id, **metadata_values(meta)}
                if meta.from_oembed and stored.thumbnail_url:
                    found[youtube_id]["thumbnail_url"] = None  # keep the Data API's larger one
                changed += is_changed(stored, meta)
                returned += stored.status == VideoStatus.UNAVAILABLE.value
            elif youtube_id in result.unavailable:
                reason = job_service.bound(result.unavailable[youtube_id], ERROR_MAX)
                gone[youtube_id] = {"b_id": stored.id, "error": reason}
                went += stored.status == VideoStatus.READY.value
        refused = await write_rows(connection, job.id, found_statement(), found)
        refused_gone = await write_rows(connection, job.id, gone_statement(), gone)
        by_youtube_id = {stored.youtube_id: stored for stored in locked}
        for youtube_id, _ in refused:
            changed -= is_changed(by_youtube_id[youtube_id], result.found[youtube_id])
            returned -= by_youtube_id[youtube_id].status == VideoStatus.UNAVAILABLE.value
        # A row the database refused was not written: that video was not checked, whatever YouTube said.
        for youtube_id, _ in refused_gone:
            went -= by_youtube_id[youtube_id].status == VideoStatus.READY.value
        refused += refused_gone
        answered = len(found) + len(gone) - len(refused)
        job.processed += len(locked)
        job.failed += len(locked) - answered
        job.changed = (job.changed or 0) + changed
        job.gone = (job.gone or 0) + went
        job.returned = (job.returned or 0) + returned
        job.refresh_after = max(batch.values())
        job.total = max(job.total, job.processed)  # a video that turned ready since the job began
        # A video found gone is what a check is for, not an error: only what could not be checked is.
        no_verdict = result.transient | result.unreadable
        unanswered = {yid: why for yid, why in no_verdict.items() if yid in by_youtube_id}
        return Applied(done=len(locked), errors=in_batch_order(batch, unanswered | dict(refused)))

    def start_message(self, job: Job) -> str:
        return f"Checking {plural(job.total, 'video')}"

    def progress_message(self, job: Job) -> str:
        text = f"Checked {job.processed:,} of {plural(job.total, 'video')}"
        if found := findings(job):
            text += f": {found}"
        if job.failed:
            text += f" ({job.failed:,} not answered)"
        return text

    def outcome_message(self, job: Job) -> str:
        if job.total and job.failed == job.total:
            return f"YouTube answered for none of the {plural(job.total, 'video')}"
        text = f"Checked {plural(job.processed - job.failed, 'video')}: {findings(job) or 'nothing changed'}"
        if job.failed:
            text += f"; {job.failed:,} could not be checked"
        return text

    def cancelled_message(self, job: Job) -> str:
        return f"Cancelled after checking {job.processed:,} of {plural(job.total, 'video')}"
