"""Acceptance fixtures: the app served by uvicorn in a subprocess, against a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
