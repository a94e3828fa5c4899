"""How often to ask a provider about a job, and when a job counts as stalled.

The interval adapts to what the job tells us: with a known finish time (the provider's estimate, or one
derived from step progress) it is half the remaining time, so polls are sparse in the middle of a long
job and dense near its end; with no estimate (queued, paused) it grows with the time already spent
waiting. Both are clamped to [min_interval_s, max_interval_s] and jittered so that many runs do not
poll in lockstep. A job whose progress signature (state, step, metrics) has not changed for
`stall_after_s` is stalled: warned about once, then cancelled if the policy says so.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers.base import JobState, JobStatus


class PollConfig(BaseModel):
    """The `poll:` section of the pipeline file."""

    model_config = ConfigDict(extra="forbid")

    min_interval_s: float = Field(default=5.0, gt=0, description="shortest wait between two polls")
    max_interval_s: float = Field(default=300.0, gt=0, description="longest wait between two polls")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="each wait is scaled by 1 +/- this")
    max_wait_s: float = Field(default=24 * 3600.0, gt=0, description="cancel the job after this long")
    stall_after_s: float = Field(default=1800.0, gt=0, description="no progress for this long is a stall")
    on_stall: Literal["warn", "cancel"] = "warn"
    stall_cancel_after_s: float | None = Field(
        default=None, gt=0, description="with on_stall=cancel: cancel after this long without progress "
                                        "(default: twice stall_after_s)")

    @model_validator(mode="after")
    def _ordered(self) -> PollConfig:
        if self.max_interval_s < self.min_interval_s:
            raise ValueError(f"max_interval_s ({self.max_interval_s:g}) is below min_interval_s "
                             f"({self.min_interval_s:g})")
        return self

    @property
    def cancel_after_s(self) -> float | None:
        if self.on_stall != "cancel":
            return None
        return self.stall_cancel_after_s or 2 * self.stall_after_s


def remaining_s(status: JobStatus, now: datetime, seconds_per_step: float | None) -> float | None:
    """Seconds until the job should finish: the provider's estimate, else extrapolated from the step rate
    observed while watching (not from the job's start, which a re-attached run never saw)."""
    if status.estimated_finish is not None:
        return (status.estimated_finish - now).total_seconds()
    if (seconds_per_step and status.step is not None and status.total_steps
            and status.state is JobState.RUNNING):
        return seconds_per_step * (status.total_steps - status.step)
    return None


@dataclass
class StepRate:
    """Seconds per training step, measured over the steps observed in the last `window_s` seconds.

    A recent window, not the job's whole history: a job whose steps slow down (longer sequences in a later
    epoch, a busy machine) gets an ETA at its current pace, where an average since the first step would
    promise about half the real remaining time. Before the window holds two distinct steps, the average
    since the first observed step stands in."""

    window_s: float = 60.0
    seconds_per_step: float | None = None
    _seen: deque[tuple[float, int]] = field(default_factory=deque)
    _first: tuple[float, int] | None = None

    def observe(self, status: JobStatus, now: float) -> float | None:
        if status.state is not JobState.RUNNING or status.step is None:
            return self.seconds_per_step
        self._first = self._first or (now, status.step)
        self._seen.append((now, status.step))
        while len(self._seen) > 2 and now - self._seen[1][0] >= self.window_s:
            self._seen.popleft()
        start = self._seen[0] if status.step > self._seen[0][1] else self._first
        if status.step > start[1]:
            self.seconds_per_step = (now - start[0]) / (status.step - start[1])
        return self.seconds_per_step


def next_interval(config: PollConfig, remaining: float | None, in_state_s: float,
                  rng: random.Random) -> float:
    """Seconds to wait before the next poll."""
    if remaining is None:
        base = 0.1 * in_state_s
    elif remaining > 0:
        base = remaining / 2
    else:  # overdue: poll often at first, back off if it stays overdue for long
        base = 0.1 * -remaining
    clamped = min(max(base, config.min_interval_s), config.max_interval_s)
    return clamped * (1 + rng.uniform(-config.jitter, config.jitter))


@dataclass
class StallWatch:
    """Remembers when the job last changed; `check` says 'ok', 'stalled' (once) or 'cancel'."""

    config: PollConfig
    _signature: tuple = ()
    _changed_at: float = 0.0
    _warned: bool = False
    stalled_for_s: float = field(default=0.0, init=False)

    def check(self, status: JobStatus, now: float) -> Literal["ok", "stalled", "cancel"]:
        signature = (status.state, status.step, tuple(sorted(status.metrics.items())))
        if signature != self._signature:
            self._signature, self._changed_at, self._warned = signature, now, False
            self.stalled_for_s = 0.0
            return "ok"
        self.stalled_for_s = now - self._changed_at
        # a job that is waiting in the provider's queue is not stalled: its progress is not ours to judge
        if status.state is JobState.PENDING or self.stalled_for_s < self.config.stall_after_s:
            return "ok"
        cancel_after = self.config.cancel_after_s
        if cancel_after is not None and self.stalled_for_s >= cancel_after:
            return "cancel"
        if self._warned:
            return "ok"
        self._warned = True
        return "stalled"
