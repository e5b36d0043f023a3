"""Parses large imports in worker processes, so a big file never holds the web process's GIL.

In a thread, three 2 MB files once held /api/health to 3 s: the parser's long C calls keep the GIL. In
another process the web process only waits on a pipe, and its sockets and health checks stay prompt
(`python -m bench --only P7` measures it). Small inputs, most pasted lists, are parsed in place: cheaper
than the round trip, and too small to stall the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final, TypeVar

from app.imports.parsing import ParsedImport, parse_import
from app.imports.takeout import ParsedTakeout, parse_takeout

INLINE_MAX_BYTES: Final = 16 * 1024
"""At most ~10 ms of parsing: done on the event loop."""
PROCESSES: Final = 2
PARSER_NICENESS: Final = 10

log = logging.getLogger(__name__)
T = TypeVar("T")


def _yield_the_cpu() -> None:
    """Parsing can wait a little; requests and sockets on the same cores should not."""
    os.nice(PARSER_NICENESS)


class ImportParser:
    """`parse_import` in a pool of worker processes (spawned, not forked: the web process has threads and
    open connections). Processes start on first use and are stopped by `close`."""

    def __init__(self, processes: int = PROCESSES) -> None:
        self._processes = processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        spawn = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self._processes, mp_context=spawn, initializer=_yield_the_cpu)

    async def parse(self, data: bytes, *, max_rows: int) -> ParsedImport:
        """`parse_import(data, max_rows=...)`: the same result, or the same ImportInputError."""
        if len(data) <= INLINE_MAX_BYTES:
            return parse_import(data, max_rows=max_rows)
        return await self._elsewhere(functools.partial(parse_import, data, max_rows=max_rows))

    async def parse_takeout(self, data: bytes, *, max_member_bytes: int, max_rows: int) -> ParsedTakeout:
        """`parse_takeout(...)` in a worker process, whatever the archive's size (it unpacks)."""
        return await self._elsewhere(
            functools.partial(parse_takeout, data, max_member_bytes=max_member_bytes, max_rows=max_rows)
        )

    async def _elsewhere(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the pool refuses all work from then on. A new one.
            log.error("the import parser's worker process died; starting a new pool")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            return await loop.run_in_executor(self._executor, work)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
