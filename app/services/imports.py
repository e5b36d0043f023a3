"""Bulk import: parse, then write the new videos and their job in ONE transaction (docs/design.md, "Jobs").

The caller commits and only then enqueues the job (SAQ runs on its own connection pool). A whole Google
Takeout archive is one transaction too: a list per playlist (an existing list of that name is used, never
a second one made), and a job per list, all sharing the upload's `upload_id`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.imports.parsing import ImportInputError, InvalidLine, ParsedImport, TooManyRows
from app.imports.pool import ImportParser
from app.imports.takeout import ParsedTakeout, SkippedPlaylist
from app.services import jobs as job_service
from app.services.errors import InvalidInput, TooLarge
from app.services.lists import create_list, get_owned_list
from app.services.videos import insert_pending_videos
from app.wording import plural
from db.models import BookmarkList, Job, JobKind

INVALID_SHOWN_MAX = 1000
"""Per-line reasons returned for one import (a 50,000-line file of junk should not answer 10 MB)."""


@dataclass(frozen=True)
class LineCounts:
    """Every line of the input, once: accepted + duplicates + invalid + blank + skipped == total.

    A line whose video had failed or been cancelled and is fetched again (`ImportOutcome.retried`) is
    `accepted`, not a duplicate: the job fetches it like a new one."""

    total: int
    accepted: int
    duplicates: int
    invalid: int
    blank: int
    skipped: int

    @classmethod
    def of(cls, parsed: ParsedImport, *, accepted: int, duplicates: int) -> LineCounts:
        invalid = len(parsed.invalid)
        return cls(parsed.lines, accepted, duplicates, invalid, parsed.blank, parsed.skipped)


@dataclass(frozen=True)
class ImportOutcome:
    job: Job | None
    accepted: int
    """Videos the job fetches: new ones, and `retried` ones that had failed or were cancelled."""
    duplicates: int
    invalid: list[InvalidLine]
    lines: LineCounts
    retried: int
    """Of `accepted`, the videos already in the list that had failed or been cancelled."""


def too_large_message(size: int | None, limit: int) -> str:
    """The 413 detail for an import over `limit` bytes (`size` None: it was cut off, its size unknown)."""
    megabytes = f" ({limit / 1024 / 1024:.3g} MB)" if limit >= 1024 * 1024 else ""
    over = "larger than" if size is None else f"{size:,} bytes, over"
    return f"the import is {over} the limit of {limit:,} bytes{megabytes}; split it into smaller files"


async def parse_elsewhere_or_reject(
    parser: ImportParser, data: bytes, *, max_bytes: int, max_rows: int
) -> ParsedImport:
    """The parsed import, or the refusal (413 over the limits, 422 unusable), parsing large inputs in the
    parser's worker processes."""
    _reject_oversized(data, max_bytes)
    try:
        parsed = await parser.parse(data, max_rows=max_rows)
    except ImportInputError as exc:
        raise _refusal(exc) from exc
    return _reject_unusable(parsed)


async def parse_takeout_or_reject(
    parser: ImportParser, data: bytes, *, max_bytes: int, max_rows: int
) -> ParsedTakeout:
    """The archive's playlists (parsed in the parser's worker processes), or the refusal: 413 over the
    size or row limits, 422 for an archive refused as a whole (app/imports/takeout.py) or unreadable."""
    _reject_oversized(data, max_bytes)
    try:
        return await parser.parse_takeout(data, max_member_bytes=max_bytes, max_rows=max_rows)
    except ImportInputError as exc:
        raise _refusal(exc) from exc


def _reject_oversized(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise TooLarge(too_large_message(len(data), max_bytes))


def _refusal(exc: ImportInputError) -> TooLarge | InvalidInput:
    if isinstance(exc, TooManyRows):
        return TooLarge(str(exc), extra={"max_rows": exc.limit})
    return InvalidInput(str(exc))


def _reject_unusable(parsed: ParsedImport) -> ParsedImport:
    if not parsed.video_ids:
        raise InvalidInput(
            "no valid YouTube video found in the import" if parsed.rows else "the import is empty",
            extra={
                "invalid": [_invalid_dict(line) for line in parsed.invalid[:INVALID_SHOWN_MAX]],
                "lines": asdict(LineCounts.of(parsed, accepted=0, duplicates=parsed.duplicates)),
            },
        )
    return parsed


def _invalid_dict(line: InvalidLine) -> dict[str, object]:
    return {"line": line.line, "value": line.value, "reason": line.reason}


def import_source(parsed: ParsedImport, file_name: str | None) -> str:
    """The uploaded file's name, else what was pasted ("12 pasted links")."""
    return file_name or plural(parsed.rows, "pasted link")


async def create_import(
    session: AsyncSession, user_id: UUID, list_id: UUID, parsed: ParsedImport, file_name: str | None = None
) -> ImportOutcome:
    # Locking the list serialises concurrent imports into it, so their duplicate counts are exact.
    await get_owned_list(session, user_id, list_id, lock=True)
    job = await job_service.create_job(
        session, user_id, list_id, JobKind.IMPORT, import_source(parsed, job_service.clean_source(file_name))
    )
    added, retried = await insert_pending_videos(session, user_id, list_id, parsed.video_ids, job.id)
    accepted = added + retried
    duplicates = parsed.duplicates + (len(parsed.video_ids) - accepted)
    if accepted == 0:
        await session.delete(job)
        await session.flush()
    else:
        job.total = accepted
        job.message = f"Queued {plural(accepted, 'video')}" + (f" ({retried:,} retried)" if retried else "")
        await session.flush()
    return ImportOutcome(
        job=job if accepted else None,
        accepted=accepted,
        duplicates=duplicates,
        invalid=parsed.invalid[:INVALID_SHOWN_MAX],
        lines=LineCounts.of(parsed, accepted=accepted, duplicates=duplicates),
        retried=retried,
    )


@dataclass(frozen=True)
class ListImport:
    """What one playlist of a Takeout archive did to its list."""

    target: BookmarkList
    created: bool
    """A new list; False: merged into the user's existing list of that name."""
    outcome: ImportOutcome
    files: list[str]


@dataclass(frozen=True)
class TakeoutOutcome:
    upload_id: UUID
    source: str
    lists: list[ListImport] = field(default_factory=list)
    skipped: list[SkippedPlaylist] = field(default_factory=list)

    @property
    def jobs(self) -> list[Job]:
        return [item.outcome.job for item in self.lists if item.outcome.job is not None]


async def create_takeout_import(
    session: AsyncSession, user_id: UUID, parsed: ParsedTakeout, file_name: str | None
) -> TakeoutOutcome:
    """A list per playlist (the user's oldest list of that name if there is one) and a job per list that
    has something new to fetch, all in the caller's one transaction and sharing one `upload_id`."""
    # Two uploads of one user at once must not both create "Watch later": they take turns.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"takeout:{user_id}", 0))))
    source = job_service.clean_source(file_name) or "Google Takeout"
    outcome = TakeoutOutcome(upload_id=uuid7(), source=source, skipped=list(parsed.skipped))
    for playlist in parsed.playlists:
        existing = await session.scalar(
            select(BookmarkList)
            .where(BookmarkList.user_id == user_id, BookmarkList.name == playlist.name)
            .order_by(BookmarkList.created_at, BookmarkList.id)
            .limit(1)
        )
        target = existing or await create_list(session, user_id, playlist.name, None)
        imported = await create_import(session, user_id, target.id, playlist.parsed, source)
        if imported.job is not None:
            imported.job.upload_id = outcome.upload_id
        outcome.lists.append(ListImport(target, existing is None, imported, playlist.files))
    await session.flush()
    return outcome
