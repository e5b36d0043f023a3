"""The web process's garbage-collection policy: short full collections with thousands of sockets open.

CPython's cyclic GC walks every tracked object in a full (generation 2) collection, and runs one whenever
the objects that reached generation 2 have grown by a quarter. An open socket holds about 100 tracked
objects (uvicorn's protocol, the websockets parser, the tasks and their coroutines), so at 10,000 sockets
a full collection walked a million objects and stopped every socket for 0.5-0.8 s (docs/benchmarks.md,
GC). What survives a full collection is long-lived by then: frozen (`gc.freeze()`: the permanent
generation, never walked again), each later full collection walks only what came since.

Reference counting still frees a frozen object when its last reference goes; only a reference cycle among
frozen objects outlives its use. A socket leaves none when it closes (measured: 0 cyclic objects after
1,000 sockets opened, frozen and closed), but other work can (an exception and its traceback, alive during
a full collection, form a cycle). So when the frozen generation has doubled since the last look at
everything, or an hour after it (the doubling's threshold, set at a peak, may never be reached again once
the live set has shrunk), the app's maintenance task thaws it: one full collection over all of it frees
such cycles, at the cost of one long pause that doubling (or the hour) makes rare.
`bookmarks_gc_frozen_objects` (/metrics) shows the frozen generation's size.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, Final

log = logging.getLogger(__name__)

FULL_EVERY: Final = 2
THAW_GROWTH: Final = 2.0
"""The frozen generation may grow to this multiple of its size after the last full look before a thaw."""
THAW_CHECK_S: Final = 60.0
THAW_EVERY_S: Final = 3600.0
"""A thaw at least this often, doubled or not."""


class FreezeLongLived:
    """Installed for the app's lifespan: the startup's objects are frozen at once, then the survivors of
    every full collection. `stop` undoes it (tests run many apps in one process)."""

    _thresholds: tuple[int, int, int] = (700, 10, 10)
    _thaw_above: float = 0.0
    _looked_at: float = 0.0
    """When everything was last collected (`time.monotonic()`)."""
    thaw_due: bool = False

    def start(self) -> None:
        self._thresholds = gc.get_threshold()
        young, middle, _old = self._thresholds
        # A full collection every FULL_EVERY collections of generation 1 (CPython's default: 10): each walks
        # only what was promoted since the last, so more of them are each shorter.
        gc.set_threshold(young, middle, FULL_EVERY)
        gc.collect()
        gc.freeze()
        # Once more, over nothing: the next full collection is due when what reaches generation 2 has grown
        # by a quarter of what the last one left there, now none, instead of a quarter of the whole app.
        gc.collect()
        self._thaw_above = gc.get_freeze_count() * THAW_GROWTH
        self._looked_at = time.monotonic()
        gc.callbacks.append(self._after_collection)

    def stop(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()
        gc.set_threshold(*self._thresholds)

    def thaw_if_due(self, *, now: float | None = None) -> int | None:
        """One full collection over everything, frozen included, when the frozen generation has doubled or
        THAW_EVERY_S have passed (`now`: `time.monotonic()` by default): how many unreachable objects it
        found (None: not due). From the event loop, never from inside a collection (the GC callback only
        marks it due)."""
        now = time.monotonic() if now is None else now
        if not self.thaw_due and now - self._looked_at < THAW_EVERY_S:
            return None
        self.thaw_due = False
        self._looked_at = now
        began = time.perf_counter()
        gc.unfreeze()
        unreachable = gc.collect()
        gc.freeze()
        self._thaw_above = gc.get_freeze_count() * THAW_GROWTH
        log.info(
            "garbage collection over every object: %d unreachable freed in %.0f ms, %d objects frozen",
            unreachable,
            (time.perf_counter() - began) * 1000,
            gc.get_freeze_count(),
        )
        return unreachable

    async def maintain(self, every_s: float = THAW_CHECK_S) -> None:
        """The app's maintenance task, for as long as it runs: a thaw when one is due."""
        while True:
            await asyncio.sleep(every_s)
            self.thaw_if_due()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()
            if gc.get_freeze_count() > self._thaw_above:
                self.thaw_due = True
