"""The web process's GC policy (app/gc_policy.py): what it freezes, and that it undoes itself."""

from __future__ import annotations

import gc
import time
import weakref

from app.gc_policy import FULL_EVERY, THAW_EVERY_S, FreezeLongLived


def test_the_policy_freezes_the_survivors_of_full_collections_and_undoes_itself() -> None:
    """Started, it freezes what exists and what survives each full collection, with a full collection every
    FULL_EVERY generation-1 collections; stopped, thresholds, callbacks and the frozen set are as before."""
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    policy = FreezeLongLived()
    policy.start()
    try:
        frozen_at_start = gc.get_freeze_count()
        # Lists are tracked by the GC; these stay alive through the next collection.
        survivor: list[list[object]] = [[] for _ in range(1000)]
        gc.collect()
        assert gc.get_freeze_count() >= frozen_at_start + 1000
        assert gc.get_threshold()[2] == FULL_EVERY
        assert len(gc.callbacks) == len(callbacks) + 1
        del survivor
    finally:
        policy.stop()
    assert gc.get_freeze_count() == 0
    assert (gc.get_threshold(), gc.callbacks) == (thresholds, callbacks)


class Node:
    """A reference cycle: a node that points at itself."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_frozen_alive_and_dropped_later_is_freed_once_the_frozen_generation_has_doubled() -> None:
    """A cycle that was alive at a full collection (so frozen) and dropped later is freed by the thaw that
    follows the frozen generation's doubling, and not before it is due."""
    policy = FreezeLongLived()
    policy.start()
    try:
        cycle = Node()
        gone = weakref.ref(cycle)
        gc.collect()  # alive now: frozen with the survivors
        del cycle
        gc.collect()
        assert gone() is not None, "a frozen cycle is out of the collector's reach"
        assert policy.thaw_if_due() is None, "not due: the frozen generation has not doubled"

        growth: list[list[object]] = [[] for _ in range(gc.get_freeze_count() + 1000)]  # doubles the frozen
        gc.collect()
        assert policy.thaw_due
        assert (policy.thaw_if_due() or 0) >= 1
        assert gone() is None
        del growth
    finally:
        policy.stop()


def test_a_cycle_frozen_alive_and_dropped_later_is_freed_by_the_periodic_thaw() -> None:
    """Without the frozen generation doubling (a live set that has shrunk since its peak never doubles it
    again), a thaw still comes once THAW_EVERY_S have passed since the last, and frees the cycle."""
    policy = FreezeLongLived()
    policy.start()
    try:
        cycle = Node()
        gone = weakref.ref(cycle)
        gc.collect()  # alive now: frozen with the survivors
        del cycle
        gc.collect()
        assert policy.thaw_if_due() is None, "not due: not doubled, and no time has passed"
        assert gone() is not None

        assert (policy.thaw_if_due(now=time.monotonic() + THAW_EVERY_S) or 0) >= 1
        assert gone() is None
    finally:
        policy.stop()
