"""Bulk import: parse, then write the new videos and their job in ONE transaction (docs/design.md, "Jobs").

The caller commits and only then enqueues the job (SAQ runs on its own connection pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.parsing import ImportInputError, InvalidLine, ParsedImport, TooManyRows, parse_import
from app.imports.pool import ImportParser
from app.services import jobs as job_service
from app.services.errors import InvalidInput, TooLarge
from app.services.lists import get_owned_list
from app.services.videos import insert_pending_videos
from db.models import Job, JobKind

INVALID_SHOWN_MAX = 1000
"""Per-line reasons returned for one import (a 50,000-line file of junk should not answer 10 MB)."""


@dataclass(frozen=True)
class ImportOutcome:
    job: Job | None
    accepted: int
    """Videos the job fetches: new ones, and `retried` ones that had failed or were cancelled."""
    duplicates: int
    invalid: list[InvalidLine]
    retried: int = 0


def too_large_message(size: int | None, limit: int) -> str:
    """The 413 detail for an import over `limit` bytes (`size` None: it was cut off, its size unknown)."""
    megabytes = f" ({limit / 1024 / 1024:.3g} MB)" if limit >= 1024 * 1024 else ""
    over = "larger than" if size is None else f"{size:,} bytes, over"
    return f"the import is {over} the limit of {limit:,} bytes{megabytes}; split it into smaller files"


def parse_or_reject(data: bytes, *, max_bytes: int, max_rows: int) -> ParsedImport:
    """Parses in this thread; the web process uses `parse_elsewhere_or_reject`."""
    _reject_oversized(data, max_bytes)
    try:
        parsed = parse_import(data, max_rows=max_rows)
    except ImportInputError as exc:
        raise _refusal(exc) from exc
    return _reject_unusable(parsed)


async def parse_elsewhere_or_reject(
    parser: ImportParser, data: bytes, *, max_bytes: int, max_rows: int
) -> ParsedImport:
    """The same answers as `parse_or_reject`, parsing large inputs in the parser's worker processes."""
    _reject_oversized(data, max_bytes)
    try:
        parsed = await parser.parse(data, max_rows=max_rows)
    except ImportInputError as exc:
        raise _refusal(exc) from exc
    return _reject_unusable(parsed)


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
            extra={"invalid": [_invalid_dict(line) for line in parsed.invalid[:INVALID_SHOWN_MAX]]},
        )
    return parsed


def _invalid_dict(line: InvalidLine) -> dict[str, object]:
    return {"line": line.line, "value": line.value, "reason": line.reason}


def import_source(parsed: ParsedImport, file_name: str | None) -> str:
    """The uploaded file's name, else what was pasted ("12 pasted links")."""
    return file_name or job_service.plural(parsed.rows, "pasted link")


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
        return ImportOutcome(
            job=None, accepted=0, duplicates=duplicates, invalid=parsed.invalid[:INVALID_SHOWN_MAX]
        )
    job.total = accepted
    job.message = f"Queued {job_service.plural(accepted, 'video')}"
    if retried:
        job.message += f" ({retried:,} retried)"
    await session.flush()
    return ImportOutcome(
        job=job,
        accepted=accepted,
        duplicates=duplicates,
        invalid=parsed.invalid[:INVALID_SHOWN_MAX],
        retried=retried,
    )
