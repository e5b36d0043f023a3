"""The web process's garbage-collection policy: short full collections with thousands of sockets open.

CPython's cyclic GC walks every tracked object in a full (generation 2) collection, and runs one whenever
the objects that reached generation 2 have grown by a quarter. An open socket holds about 100 tracked
objects (uvicorn's protocol, the websockets parser, the tasks and their coroutines), so at 10,000 sockets
a full collection walked a million objects and stopped every socket for 0.5-0.8 s (docs/benchmarks.md,
GC). What survives a full collection is long-lived by then: frozen (`gc.freeze()`: the permanent
generation, never walked again), each later full collection walks only what came since.

Reference counting still frees a frozen object when its last reference goes; only a reference cycle among
frozen objects outlives its use. A socket leaves none when it closes (measured: 0 cyclic objects after
1,000 sockets opened, frozen and closed), and `bookmarks_gc_frozen_objects` (/metrics) shows the frozen
generation's size, so a growth that sockets do not explain can be seen.
"""

from __future__ import annotations

import gc
from typing import Any, Final

FULL_EVERY: Final = 2


class FreezeLongLived:
    """Installed for the app's lifespan: the startup's objects are frozen at once, then the survivors of
    every full collection. `stop` undoes it (tests run many apps in one process)."""

    _thresholds: tuple[int, int, int] = (700, 10, 10)

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
        gc.callbacks.append(self._after_collection)

    def stop(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()
        gc.set_threshold(*self._thresholds)

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()
