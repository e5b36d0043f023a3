"""Hand-written SQL, loaded from the named blocks of `db/sql/*.sql`.

Each block starts with `-- name --` and a one-line `-- description`; `queries["name"]` is its text.
Names are unique across files.
"""

from __future__ import annotations

import re
from importlib import resources
from types import MappingProxyType
from typing import Final

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def parse_sql_file(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        if not lines or not lines[0].startswith("-- "):
            raise ValueError(f"SQL block {name!r} has no one-line description")
        named[name] = "\n".join(lines[1:]).strip()
    return named


def load_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in sorted(resources.files("db.sql").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse_sql_file(entry.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"SQL block {name!r} is defined twice")
            queries[name] = sql
    return queries


queries: Final = MappingProxyType(load_queries())
