"""Which PostgreSQL the app talks to, and whether that release has the LISTEN/NOTIFY fixes of November 2025.

Until those releases a listener could fail with "could not access status of transaction" once VACUUM had
truncated the commit log under notifications still in the queue; the fix was backpatched to every supported
branch. The live path of this app is LISTEN/NOTIFY, so `/api/health` and `/metrics` say when a server
predates it. No Litestar here: the health route and the metrics route both call `read_server_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import queries

SUPPORTED_MAJORS: Final = range(15, 19)
"""The majors the test suite runs on: 15 (the machine's) and 18 (the embedded default); 16 and 17 between."""

FIXED_MINORS: Final = {18: 1, 17: 7, 16: 11, 15: 15, 14: 20, 13: 23}
"""The first minor release of each branch with the LISTEN/NOTIFY fixes (the releases of 13 November 2025:
18.1, 17.7, 16.11, 15.15, 14.20, 13.23)."""


@dataclass(frozen=True)
class ServerVersion:
    number: int
    """`server_version_num`: 180004 is 18.4 (major * 10000 + minor since PostgreSQL 10)."""
    text: str
    """`server_version` as the server spells it, e.g. '18.4' or '15.19 (Debian 15.19-0+deb12u1)'."""

    @property
    def major(self) -> int:
        return self.number // 10000

    @property
    def minor(self) -> int:
        return self.number % 10000

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def warning(self) -> str | None:
        """Why this server is not what the app wants, or None when it is a supported, fixed release."""
        if self.major < 10:
            return f"PostgreSQL {self.text} is far too old; use {SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}"
        fixed = FIXED_MINORS.get(self.major)
        if fixed is not None and self.minor < fixed:
            return (
                f"PostgreSQL {self.short} predates the November 2025 LISTEN/NOTIFY fixes: a listener can fail"
                f" with 'could not access status of transaction'; upgrade to {self.major}.{fixed} or later"
            )
        if self.major not in SUPPORTED_MAJORS:
            return (
                f"PostgreSQL {self.major} is outside the tested range"
                f" {SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}"
            )
        return None

    def report(self) -> dict[str, Any]:
        """What `/api/health` shows under `database`."""
        return {"server_version": self.short, "server_version_num": self.number, "warning": self.warning}

    def metric_samples(self) -> list[tuple[str, str, dict[str, str], float]]:
        """What `/metrics` shows: (name, help, labels, value), as `app.api.metrics.render` takes them."""
        return [
            (
                "bookmarks_postgres_server_version_num",
                "server_version_num of the database (180004 is 18.4).",
                {"version": self.short},
                float(self.number),
            ),
            (
                "bookmarks_postgres_version_warning",
                "1 when the server predates the November 2025 LISTEN/NOTIFY fixes or is outside 15-18.",
                {},
                float(self.warning is not None),
            ),
        ]


async def read_server_version(session: AsyncSession) -> ServerVersion:
    row = (await session.execute(text(queries["server_version"]))).one()
    return ServerVersion(number=int(row.number), text=str(row.version))
