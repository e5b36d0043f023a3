"""Bulk import: parse, then write the new videos and their job in ONE transaction (docs/design.md, "Jobs").

The caller commits and only then enqueues the job (SAQ runs on its own connection pool).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.parsing import ImportInputError, InvalidLine, ParsedImport, TooManyRows, parse_import
from app.services import jobs as job_service
from app.services.errors import InvalidInput, TooLarge
from app.services.lists import get_owned_list
from app.services.videos import insert_pending_videos
from app.wording import plural
from db.models import Job

INVALID_SHOWN_MAX = 1000
"""Per-line reasons returned for one import (a 50,000-line file of junk should not answer 10 MB)."""


@dataclass(frozen=True)
class LineCounts:
    """Every line of the input, once: accepted + duplicates + invalid + blank + skipped == total."""

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
    duplicates: int
    invalid: list[InvalidLine]
    lines: LineCounts


def too_large_message(size: int | None, limit: int) -> str:
    """The 413 detail for an import over `limit` bytes (`size` None: it was cut off, its size unknown)."""
    megabytes = f" ({limit / 1024 / 1024:.3g} MB)" if limit >= 1024 * 1024 else ""
    over = "larger than" if size is None else f"{size:,} bytes, over"
    return f"the import is {over} the limit of {limit:,} bytes{megabytes}; split it into smaller files"


def parse_or_reject(data: bytes, *, max_bytes: int, max_rows: int) -> ParsedImport:
    if len(data) > max_bytes:
        raise TooLarge(too_large_message(len(data), max_bytes))
    try:
        parsed = parse_import(data, max_rows=max_rows)
    except TooManyRows as exc:
        raise TooLarge(str(exc), extra={"max_rows": exc.limit}) from exc
    except ImportInputError as exc:
        raise InvalidInput(str(exc)) from exc
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


async def create_import(
    session: AsyncSession, user_id: UUID, list_id: UUID, parsed: ParsedImport
) -> ImportOutcome:
    # Locking the list serialises concurrent imports into it, so their duplicate counts are exact.
    await get_owned_list(session, user_id, list_id, lock=True)
    job = await job_service.create_job(session, user_id, list_id, job_service.IMPORT_KIND)
    accepted = await insert_pending_videos(session, user_id, list_id, parsed.video_ids, job.id)
    duplicates = parsed.duplicates + (len(parsed.video_ids) - accepted)
    if accepted == 0:
        await session.delete(job)
        await session.flush()
    else:
        job.total = accepted
        job.message = f"Queued {plural(accepted, 'video')}"
        await session.flush()
    return ImportOutcome(
        job=job if accepted else None,
        accepted=accepted,
        duplicates=duplicates,
        invalid=parsed.invalid[:INVALID_SHOWN_MAX],
        lines=LineCounts.of(parsed, accepted=accepted, duplicates=duplicates),
    )
