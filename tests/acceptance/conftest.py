"""Acceptance fixtures: the app served by uvicorn in a subprocess, against a fresh database."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from testkit.harness import ServerProcess, app_env


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(env=app_env(database_url), log_path=tmp_path / "server.log")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """BOOKMARKS_DATA_DIR for an embedded PostgreSQL, outside pytest's base temp: a pytest session started
    as root sets /tmp/pytest-of-root back to 0700, which locks the `pgserver` user out of a data directory
    under it (seen when two sessions ran at once)."""
    home = Path(tempfile.mkdtemp(prefix="bookmarks-embedded-test-"))
    try:
        (home / "data").mkdir()
        yield home / "data"
    finally:
        shutil.rmtree(home, ignore_errors=True)
