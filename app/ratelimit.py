"""A small token bucket per key, in process memory (each web process limits on its own)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 100_000
"""Buckets are forgotten oldest-first past this many keys, so memory stays bounded under a flood."""


@dataclass
class RateLimiter:
    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self.clock()
        tokens, updated = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - updated) * self.per_minute / 60.0)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after_s(self, key: str) -> int:
        tokens, _ = self._buckets.get(key, (0.0, 0.0))
        return max(1, round((1.0 - tokens) * 60.0 / self.per_minute))


@dataclass
class Limits:
    """The app's limits: failed sign-ins per client address, imports per user."""

    auth_failures: RateLimiter
    imports: RateLimiter
