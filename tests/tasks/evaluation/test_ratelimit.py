"""The token bucket on a fake clock: exact spacing, bursts after idle time, and Retry-After."""

from __future__ import annotations

import threading

import pytest

from tasks.evaluation.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(rate: float, capacity: float = 1.0) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep), clock


def send_times(limiter: TokenBucket, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        limiter.acquire()
        times.append(round(clock.now, 9))
    return times


def test_requests_are_spaced_at_the_rate() -> None:
    limiter, clock = bucket(rate=10)
    assert send_times(limiter, clock, 4) == [0.0, 0.1, 0.2, 0.3]


def test_a_burst_of_capacity_goes_at_once_then_the_rate_holds() -> None:
    limiter, clock = bucket(rate=10, capacity=3)
    assert send_times(limiter, clock, 5) == [0.0, 0.0, 0.0, 0.1, 0.2]
    clock.now = 10.0  # idle long enough to refill the whole burst
    assert send_times(limiter, clock, 4) == [10.0, 10.0, 10.0, 10.1]


def test_per_minute_and_bad_arguments() -> None:
    assert TokenBucket.per_minute(600).rate == 10
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        TokenBucket(1, capacity=0.5)


def test_retry_after_holds_every_request_and_resumes_without_a_burst() -> None:
    limiter, clock = bucket(rate=10, capacity=5)
    limiter.acquire()
    limiter.defer(2.0)
    assert send_times(limiter, clock, 3) == [2.0, 2.1, 2.2]
    limiter.defer(0)  # no hint: nothing changes
    assert send_times(limiter, clock, 1) == [2.3]


def test_a_caller_asleep_when_retry_after_arrives_books_again() -> None:
    clock = FakeClock()
    limiter: TokenBucket

    def sleep_and_get_throttled(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:  # another worker got a 429 while this one waited for its slot
            limiter.defer(5.0)

    limiter = TokenBucket(10, clock=clock, sleep=sleep_and_get_throttled)
    limiter.acquire()
    waited = limiter.acquire()
    assert clock.now == pytest.approx(5.1)
    assert waited == pytest.approx(5.1)
    assert limiter.waited_s == pytest.approx(5.1)


def test_threads_share_one_schedule() -> None:
    limiter = TokenBucket(200)  # real clock: 20 requests take about 0.1 s
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(limiter._clock())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 20
    assert stamps[-1] - stamps[0] >= 19 / 200 - 0.002


def test_an_unlimited_bucket_only_coordinates_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucket.unlimited(clock=clock, sleep=clock.sleep)
    assert send_times(limiter, clock, 3) == [0.0, 0.0, 0.0]
    limiter.defer(1.5)
    assert send_times(limiter, clock, 2) == [1.5, 1.5]
