"""wait_for_job: poll a training job until it ends, and stop it when it must not go on billing.

Each poll is a short Prefect task (a transient error retries one observation, not the wait). Between
polls the watcher sleeps for the adaptive interval of tasks.training.polling. It cancels the job, records the
cancellation and raises JobFailed when the job has made no progress past the stall policy, when the
wall-clock ceiling (poll.max_wait_s) passes, or when the spend so far (the estimate times the finished
fraction) passes the budget ceiling.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import task

from providers.base import JobRef, JobState, JobStatus, Provider
from providers.errors import JobFailed, UnexpectedProviderResponse
from tasks.policy import PROVIDER_CALL
from tasks.progress import milestone
from tasks.registry import Registry
from tasks.training.polling import PollConfig, StallWatch, StepRate, next_interval, remaining_s
from tasks.training.report import JobReport


# NO_CACHE (in PROVIDER_CALL): a poll must always ask the provider afresh
@task(name="poll", **PROVIDER_CALL)
def poll_job(provider: Provider, job: JobRef) -> JobStatus:
    return provider.get_job(job)


@dataclass(frozen=True)
class SpendCeiling:
    """Cancel when estimate_usd x finished fraction passes max_usd."""

    estimate_usd: float
    max_usd: float


@dataclass
class JobWatcher:
    """The waiting loop with its clock, sleep, randomness and reporting injected (tests swap them)."""

    config: PollConfig
    registry: Registry
    spend: SpendCeiling | None = None
    poll: Callable[[Provider, JobRef], JobStatus] = poll_job
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: random.Random = field(default_factory=random.Random)
    report: JobReport = field(default_factory=JobReport)
    polls: int = 0

    def wait(self, provider: Provider, job: JobRef) -> JobStatus:
        """Return the SUCCEEDED status (with its model); raise JobFailed for any other end."""
        started = self.clock()
        state_since, last_state = started, None
        stall, rate = StallWatch(self.config), StepRate()
        while True:
            status = self.poll(provider, job)
            self.polls += 1
            if status.job.job_id != job.job_id:  # the provider restarted the job under a new id: follow it
                self.registry.job_created(status.job)
                milestone("train", "job %s continues as %s", job.job_id, status.job.job_id)
                job = status.job
            now = self.clock()
            if status.state is not last_state:
                self.registry.job_observed(job, status.state, status.model.model_id if status.model else None)
                self.report.event(status.state.value, status)
                state_since, last_state = now, status.state
            remaining = remaining_s(status, self.now(), rate.observe(status, now))
            self.report.observed(status, remaining)
            if status.state.is_terminal:
                return _outcome(status)
            self._enforce(provider, status, stall.check(status, now), stall.stalled_for_s, now - started)
            interval = next_interval(self.config, remaining, now - state_since, self.rng)
            self.sleep(max(0.0, min(interval, started + self.config.max_wait_s - now)))

    def _enforce(self, provider: Provider, status: JobStatus, stalled: str, stalled_for_s: float,
                 elapsed_s: float) -> None:
        if stalled == "stalled":
            self.report.event("stalled", status, stalled_for_s=stalled_for_s)
            milestone("train", "warning: job %s made no progress for %.0f s", status.job.job_id,
                      stalled_for_s)
        elif stalled == "cancel":
            self._cancel(provider, status, f"no progress for {stalled_for_s:.0f} s (poll.on_stall=cancel)")
        if elapsed_s >= self.config.max_wait_s:
            self._cancel(provider, status, f"still {status.state.value} after poll.max_wait_s="
                                           f"{self.config.max_wait_s:g}")
        if self.spend and status.step is not None and status.total_steps:
            spent = self.spend.estimate_usd * status.step / status.total_steps
            if spent > self.spend.max_usd:
                self._cancel(provider, status, f"spend so far ${spent:.2f} passed budget.max_usd="
                                               f"{self.spend.max_usd:g}")

    def _cancel(self, provider: Provider, status: JobStatus, reason: str) -> None:
        provider.cancel(status.job)
        self.registry.job_observed(status.job, JobState.CANCELLED)
        self.report.event("cancelled", status, reason=reason)
        raise JobFailed(status.job.job_id, JobState.CANCELLED.value, f"loraflow cancelled it: {reason}")


def wait_for_job(provider: Provider, job: JobRef, config: PollConfig, registry: Registry, *,
                 spend: SpendCeiling | None = None) -> JobStatus:
    return JobWatcher(config, registry, spend).wait(provider, job)


def _outcome(status: JobStatus) -> JobStatus:
    if status.state is not JobState.SUCCEEDED:
        raise JobFailed(status.job.job_id, status.state.value, status.message,
                        data_at_fault=status.data_at_fault)
    if status.model is None:
        raise UnexpectedProviderResponse(status.job.provider,
                                         f"job {status.job.job_id} succeeded without a model id")
    milestone("train", "job %s succeeded: model %s", status.job.job_id, status.model.model_id)
    return status
