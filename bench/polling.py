"""Adaptive polling vs fixed 30 s polling on a two-hour job, through the real openai SDK and the emulator.

Time is simulated: the emulator and the watcher share a virtual clock that the watcher's sleep advances,
so a two-hour job takes a second of wall time and every figure is exact and repeatable. For each policy
it reports the API calls made (job retrievals plus event listings) and the delay between the job
finishing and the flow noticing.

    .venv/bin/python bench/polling.py [--hours 2] [--seeds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
from pathlib import Path

import openai

from emulator import EmulatorServer, Timeline
from providers.base import DatasetRef, PreparedDataset, TrainingSpec
from providers.openai.adapter import OpenAIOptions, OpenAIProvider
from tasks.registry import Registry
from tasks.training.polling import PollConfig
from tasks.training.wait import JobWatcher, poll_job

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "data" / "bullets.jsonl"


class VirtualClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now, self._lock = start, threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class _Quiet:
    def event(self, *args: object, **kwargs: object) -> None:
        pass

    def observed(self, *args: object) -> None:
        pass


def two_hour_timeline(hours: float) -> Timeline:
    total = hours * 3600
    return Timeline(validating_s=120, queued_s=600, steps=400, step_s=(total - 720) / 400, checkpoints=3)


def measure(policy: PollConfig, hours: float, seed: int, workdir: Path) -> tuple[int, float]:
    clock = VirtualClock()
    timeline = two_hour_timeline(hours)
    with EmulatorServer(timeline=timeline, clock=clock) as emulator:
        client = openai.OpenAI(base_url=emulator.base_url, api_key="bench", max_retries=0)
        provider = OpenAIProvider(client, OpenAIOptions(file_poll_interval_s=0.01))
        train = workdir / "train.jsonl"
        train.write_text("".join(QUICKSTART.read_text().splitlines(keepends=True)[:50]))
        data: DatasetRef = provider.upload(PreparedDataset(train_path=train, sha256=f"{seed:064d}",
                                                           train_examples=50))
        job = provider.create_job(TrainingSpec(base_model="gpt-4o-mini-2024-07-18"), data,
                                  idempotency_key=f"b{seed}")
        finishes_at = clock() + timeline.validating_s + timeline.queued_s + timeline.steps * timeline.step_s
        registry = Registry(f"sqlite:///{workdir / f'registry-{seed}.db'}")
        registry.claim_job(idempotency_key=f"b{seed}", submission_key=f"s{seed}", attempt=1, target="bench",
                           base_model="b", owner="bench")
        registry.job_created(job)
        clock.sleep(random.Random(-seed).uniform(0, 60))  # the flow starts watching a little after the create
        before = emulator.state.counters["requests"]
        JobWatcher(policy, registry, poll=poll_job.fn, sleep=clock.sleep, clock=clock,
                   rng=random.Random(seed), now=lambda: _utc(clock()), report=_Quiet()).wait(provider, job)
        noticed = clock()
        after = emulator.state.counters["requests"]
    calls = sum(after.values()) - sum(before.values())
    return calls, noticed - finishes_at


def _utc(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    policies = {
        "adaptive (5-300 s, jitter 10%)": PollConfig(min_interval_s=5, max_interval_s=300, jitter=0.1,
                                                     stall_after_s=10**6),
        "fixed 30 s": PollConfig(min_interval_s=30, max_interval_s=30, jitter=0, stall_after_s=10**6),
    }
    print(f"{args.hours:g}-hour job (2 min validating, 10 min queued, 400 steps), {args.seeds} runs each")
    print(f"{'policy':<34} {'API calls':>10} {'notice delay s (mean / max)':>30}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, policy in policies.items():
            results = [measure(policy, args.hours, seed, Path(scratch)) for seed in range(args.seeds)]
            calls = statistics.mean(c for c, _ in results)
            delays = [d for _, d in results]
            print(f"{name:<34} {calls:>10.1f} {statistics.mean(delays):>18.1f} / {max(delays):.1f}")


if __name__ == "__main__":
    main()
