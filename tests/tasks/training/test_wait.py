from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.base import DatasetRef, JobRef, JobState, JobStatus, TrainingSpec
from providers.errors import JobFailed
from providers.fake import FakeOptions, FakeProvider
from tasks.registry import Registry
from tasks.training.polling import PollConfig, StallWatch, StepRate, next_interval, remaining_s
from tasks.training.wait import JobWatcher, SpendCeiling, poll_job

JOB = JobRef(provider="fake", job_id="j1")
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def status(state: JobState = JobState.RUNNING, step: int | None = None, total: int | None = 100,
           eta: datetime | None = None, loss: float | None = None) -> JobStatus:
    return JobStatus(job=JOB, state=state, vendor_state=state.value, step=step, total_steps=total,
                     estimated_finish=eta, metrics={} if loss is None else {"train_loss": loss})


CONFIG = PollConfig(min_interval_s=5, max_interval_s=300, jitter=0)


@pytest.mark.parametrize(("remaining", "in_state", "expected"), [
    (3600, 0, 300),        # middle of a long job: the ceiling
    (120, 0, 60),          # near the end: half the remaining time
    (4, 0, 5),             # about to end: the floor
    (None, 30, 5),         # queued for 30 s: the floor
    (None, 1200, 120),     # queued for 20 min: a tenth of the wait
    (-20, 0, 5),           # just overdue: poll often
    (-6000, 0, 300),       # long overdue: back off
])
def test_interval_adapts_to_the_remaining_time(remaining: float | None, in_state: float,
                                               expected: float) -> None:
    assert next_interval(CONFIG, remaining, in_state, random.Random(0)) == expected


def test_jitter_stays_within_bounds_and_is_seeded() -> None:
    config = PollConfig(min_interval_s=5, max_interval_s=300, jitter=0.1)
    draws = [next_interval(config, 120, 0, random.Random(seed)) for seed in range(50)]
    assert all(54 <= d <= 66 for d in draws) and len(set(draws)) > 40
    assert next_interval(config, 120, 0, random.Random(3)) == next_interval(config, 120, 0, random.Random(3))


def test_remaining_time_from_the_provider_estimate_or_the_observed_step_rate() -> None:
    assert remaining_s(status(eta=NOW + timedelta(minutes=5)), NOW, None) == 300
    rate = StepRate()
    rate.observe(status(step=40), now=1000.0)  # attached mid-job: the job's start is unknown
    assert rate.observe(status(step=50), now=1100.0) == 10.0
    assert remaining_s(status(step=50), NOW, 10.0) == 500
    assert remaining_s(status(JobState.PENDING), NOW, None) is None


def _timeline(seconds_per_step: list[float]) -> list[tuple[float, int]]:
    """(time, step) after each step of a job whose step i takes seconds_per_step[i]."""
    t, points = 0.0, [(0.0, 0)]
    for step, took in enumerate(seconds_per_step, start=1):
        t += took
        points.append((t, step))
    return points


def _etas(points: list[tuple[float, int]], total: int, every_s: float) -> list[tuple[float, float, float]]:
    """Poll the scripted job every `every_s`: (time, ETA shown, real remaining time) at each poll."""
    rate, shown, end = StepRate(), [], points[-1][0]
    t = 0.0
    while t < end:
        step = max(s for when, s in points if when <= t)
        seen = status(step=step, total=total)
        remaining = remaining_s(seen, NOW, rate.observe(seen, now=t))
        if remaining is not None:
            shown.append((t, remaining, end - t))
        t += every_s
    return shown


def test_eta_on_a_scripted_timeline_follows_the_current_pace() -> None:
    steady = _etas(_timeline([0.5] * 400), total=400, every_s=2)
    assert all(abs(eta - real) <= 1.0 for t, eta, real in steady)  # within one poll's worth of steps
    # 100 fast steps, then the job slows to 2 s a step (a later epoch, a busy machine) for 200 more
    slowed = _etas(_timeline([1.0] * 100 + [2.0] * 200), total=300, every_s=5)
    settled = [(eta, real) for t, eta, real in slowed if t >= 100 + 65]  # the window has seen the new pace
    assert settled and all(abs(eta - real) / real <= 0.05 for eta, real in settled if real > 20)
    # the average since the first step would have promised about two thirds of the real time at step 150
    at_150 = next((eta, real) for t, eta, real in slowed if t >= 200)
    assert at_150[0] == pytest.approx(at_150[1], rel=0.05)


def test_stall_is_warned_once_then_cancelled_on_policy() -> None:
    watch = StallWatch(PollConfig(stall_after_s=100, on_stall="cancel", stall_cancel_after_s=300))
    same = status(step=3, loss=1.0)
    assert [watch.check(same, t) for t in (0, 50, 100, 150, 299, 300)] == [
        "ok", "ok", "stalled", "ok", "ok", "cancel"]
    assert watch.check(status(step=4, loss=0.9), 301) == "ok"
    warn_only = StallWatch(PollConfig(stall_after_s=10))
    assert [warn_only.check(same, t) for t in (0, 10, 10_000)] == ["ok", "stalled", "ok"]
    queued = StallWatch(PollConfig(stall_after_s=10))
    assert {queued.check(status(JobState.PENDING), t) for t in (0, 100, 1000)} == {"ok"}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.observations: list[JobStatus] = []

    def event(self, name: str, status: JobStatus, **payload: object) -> None:
        self.events.append((name, payload))

    def observed(self, status: JobStatus, remaining: float | None) -> None:
        self.observations.append(status)


def watch(provider: FakeProvider, tmp_path: Path, spend: SpendCeiling | None = None, **config: object
          ) -> tuple[JobWatcher, Recorder, JobRef, Registry]:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    job = provider.create_job(TrainingSpec(base_model="b"), DatasetRef(provider="fake", train_file_id="f",
                                                                        sha256="s"), idempotency_key="k")
    registry.claim_job(idempotency_key="k", submission_key="s", attempt=1, target="fake", base_model="b",
                       owner="test")
    registry.job_created(job)
    clock = [0.0]
    recorder = Recorder()
    watcher = JobWatcher(PollConfig(**{"min_interval_s": 10, "max_interval_s": 10, "jitter": 0, **config}),
                         registry, spend, poll=poll_job.fn,
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                         clock=lambda: clock[0], report=recorder)
    return watcher, recorder, job, registry


def test_every_transition_is_an_event(tmp_path: Path) -> None:
    provider = FakeProvider()
    watcher, recorder, job, _ = watch(provider, tmp_path)
    assert watcher.wait(provider, job).state is JobState.SUCCEEDED
    assert [name for name, _ in recorder.events] == ["pending", "running", "succeeded"]


def test_a_stalled_job_is_cancelled_when_the_policy_says_so(tmp_path: Path) -> None:
    provider = FakeProvider(FakeOptions(stall=True))
    watcher, recorder, job, registry = watch(provider, tmp_path, stall_after_s=30, on_stall="cancel",
                                             stall_cancel_after_s=60)
    with pytest.raises(JobFailed, match="no progress for 60 s"):
        watcher.wait(provider, job)
    assert [name for name, _ in recorder.events][-2:] == ["stalled", "cancelled"]
    assert registry.latest_job("s").state == "cancelled"


def test_spend_ceiling_cancels_a_job_that_costs_too_much(tmp_path: Path) -> None:
    provider = FakeProvider(FakeOptions(states=[JobState.RUNNING] * 20 + [JobState.SUCCEEDED],
                                        total_steps=10))
    watcher, recorder, job, _ = watch(provider, tmp_path, spend=SpendCeiling(estimate_usd=100, max_usd=35))
    with pytest.raises(JobFailed, match="spend so far"):
        watcher.wait(provider, job)
    name, payload = recorder.events[-1]
    assert name == "cancelled" and "passed budget.max_usd=35" in payload["reason"]
    assert any(call[0] == "cancel" for call in provider.calls)
