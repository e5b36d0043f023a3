"""The token bucket behind the sign-in and import limits."""

from __future__ import annotations

from app.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_passes_then_stops() -> None:
    """`per_minute` requests pass at once; the next is refused until tokens refill."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after_s("a") == 20
    clock.now = 20.0
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False


def test_keys_are_independent() -> None:
    """One client's exhausted bucket does not limit another."""
    limiter = RateLimiter(per_minute=1, clock=FakeClock())
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False
    assert limiter.allow("b") is True
