"""Waiting for something a vendor builds in minutes (a deployment, an endpoint, provisioned throughput)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator


def delays(wait_s: float, poll_s: float, expired: Callable[[], Exception]) -> Iterator[float]:
    """Sleeps that double from one second (or `poll_s`, when shorter) up to `poll_s`; once `wait_s` has
    passed, the next one raises `expired()` instead. Minutes at a vendor, a moment on the emulator."""
    deadline, delay = time.monotonic() + wait_s, min(1.0, poll_s)
    while True:
        if time.monotonic() > deadline:
            raise expired()
        yield delay
        delay = min(delay * 2, poll_s)
