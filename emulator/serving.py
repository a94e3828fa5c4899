"""How chat completions are served: a fixed latency and a requests-per-minute limit.

The limit is a token bucket refilled at `requests_per_minute / 60` per second that holds at most one
second's worth of requests (at least one): the service enforces per-minute limits over shorter windows,
so a burst of a whole minute's quota is refused there too. A refused request is answered at once with
429, `Retry-After` (whole seconds, rounded up) and `retry-after-ms` (the time until the bucket holds a
request again). The latency is an `asyncio.sleep` after admission, so a slow answer never holds up
another request.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from emulator.wire import ApiError


@dataclass(frozen=True)
class ServingSettings:
    latency_s: float = 0.0
    requests_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be at least 0, got {self.latency_s}")
        if self.requests_per_minute is not None and self.requests_per_minute < 1:
            raise ValueError(f"requests_per_minute must be at least 1 (or None for no limit), "
                             f"got {self.requests_per_minute}")


class Serving:
    """The live settings and the bucket; shared by the event loop (admit) and the test thread (configure)."""

    def __init__(self, settings: ServingSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._settings = settings or ServingSettings()
        self._tokens = self._capacity()
        self._filled_at = clock()

    @property
    def settings(self) -> ServingSettings:
        return self._settings

    def configure(self, settings: ServingSettings) -> ServingSettings:
        """Replace the settings (the bucket starts full); returns the previous ones."""
        with self._lock:
            previous, self._settings = self._settings, settings
            self._tokens, self._filled_at = self._capacity(), self._clock()
        return previous

    def admit(self) -> float | None:
        """Take one request from the bucket: None when admitted, else the seconds until one is available."""
        with self._lock:
            rpm = self._settings.requests_per_minute
            if rpm is None:
                return None
            now = self._clock()
            rate = rpm / 60.0
            self._tokens = min(self._capacity(), self._tokens + (now - self._filled_at) * rate)
            self._filled_at = now
            if self._tokens >= 1.0 - 1e-9:  # float refills land a hair under a whole request
                self._tokens = max(0.0, self._tokens - 1.0)
                return None
            return (1.0 - self._tokens) / rate

    async def serve(self) -> None:
        """Admit one chat completion or raise the 429 the service would send; then wait the latency."""
        wait = self.admit()
        if wait is not None:
            rpm = self._settings.requests_per_minute
            raise ApiError(429, f"Rate limit reached for requests: limit {rpm} per minute (emulated). "
                                f"Please try again in {wait * 1000:.0f}ms.",
                           type="requests", code="rate_limit_exceeded", headers={
                               "retry-after": str(max(1, math.ceil(wait))),
                               "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
                               "x-ratelimit-limit-requests": str(rpm),
                               "x-ratelimit-remaining-requests": "0",
                               "x-ratelimit-reset-requests": f"{wait:.3f}s",
                           })
        if self._settings.latency_s > 0:
            await asyncio.sleep(self._settings.latency_s)

    def _capacity(self) -> float:
        rpm = self._settings.requests_per_minute
        return max(1.0, rpm / 60.0) if rpm is not None else 0.0
