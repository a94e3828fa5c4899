"""A client-side request-rate limit shared by every worker thread, honouring the provider's Retry-After.

A token bucket in its virtual-scheduling form (GCRA): each `acquire` reserves the next free slot, so
waiting callers are served in arrival order and the rate holds exactly, without a refill thread. A burst of
`capacity` requests may go at once after an idle period. `defer(seconds)` is what a 429 with Retry-After
asks for: no request leaves before that time, and none of the callers already waiting sneaks out in a
burst afterwards. The clock and the sleep are injected, so tests run on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` requests per second on average, at most `capacity` at once."""

    def __init__(self, rate: float, capacity: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.rate, self.capacity = rate, capacity
        self._interval = 1.0 / rate
        self._tolerance = (capacity - 1) * self._interval
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = clock()  # the theoretical arrival time of the next request
        self._deferrals = 0
        self.waited_s = 0.0

    @classmethod
    def per_minute(cls, requests_per_minute: float, **kwargs: object) -> TokenBucket:
        return cls(requests_per_minute / 60.0, **kwargs)

    @classmethod
    def unlimited(cls, **kwargs: object) -> TokenBucket:
        """No rate of its own; it only makes every caller honour a Retry-After that one of them received."""
        return cls(float("inf"), **kwargs)

    def acquire(self) -> float:
        """Block until this caller may send one request; returns the seconds it waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                start = max(now, self._next - self._tolerance)
                self._next = max(self._next, start) + self._interval
                generation = self._deferrals
            delay = start - now
            if delay > 0:
                self._sleep(delay)
                waited += delay
            with self._lock:
                if generation == self._deferrals:
                    self.waited_s += waited
                    return waited
            # a Retry-After arrived while this caller slept: its slot may fall inside the pause, book again

    def defer(self, seconds: float) -> None:
        """The provider said Retry-After `seconds`: hold every request until then, then resume at the rate."""
        if seconds <= 0:
            return
        with self._lock:
            resume = self._clock() + seconds
            self._next = max(self._next, resume + self._tolerance)
            self._deferrals += 1
