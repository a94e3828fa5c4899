"""Simulated canaries: traffic with a known effect, fed through `tasks.release.canary.decide` look by look.

Each look draws the batch's sufficient statistics directly (a normal batch's mean and variance from their
exact distributions, a Bernoulli batch's count from the binomial), so hundreds of month-long experiments cost
a second. Used to check the rule (false promotions under the null, power, how fast harm is caught) before
trusting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from tasks.release.ab import Moments, arm_for, bucket
from tasks.release.canary import CanaryPolicy, Decision, Snapshot, Window, decide

_Z95 = 1.6448536


@dataclass(frozen=True)
class Arm:
    """One arm's true behaviour: normal judge score, log-normal latency, normal cost, Bernoulli rates."""

    score_mean: float = 3.5
    score_sd: float = 1.0
    log_latency_mean: float = math.log(800.0)
    log_latency_sd: float = 0.4
    cost_mean: float = 0.002
    cost_sd: float = 0.0005
    error: float = 0.01
    schema_failure: float = 0.01
    refusal: float = 0.02


@dataclass
class _Sums:
    n: int = 0
    s: float = 0.0
    ss: float = 0.0

    def moments(self) -> Moments:
        if self.n < 2:
            return Moments(self.n, self.s / max(self.n, 1), 0.0)
        mean = self.s / self.n
        return Moments(self.n, mean, max((self.ss - self.n * mean * mean) / (self.n - 1), 0.0))


@dataclass
class _Batch:
    rng: np.random.Generator
    sums: dict[str, _Sums] = field(default_factory=dict)

    def normal(self, name: str, n: int, mean: float, sd: float) -> tuple[float, float]:
        m = self.rng.normal(mean, sd / math.sqrt(n))
        var = sd * sd * self.rng.chisquare(n - 1) / (n - 1)
        self._add(name, n, n * m, (n - 1) * var + n * m * m)
        return m, math.sqrt(var)

    def bernoulli(self, name: str, n: int, p: float) -> float:
        k = float(self.rng.binomial(n, p))
        self._add(name, n, k, k)
        return k / n

    def _add(self, name: str, n: int, s: float, ss: float) -> None:
        total = self.sums.setdefault(name, _Sums())
        total.n, total.s, total.ss = total.n + n, total.s + s, total.ss + ss


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    elapsed_s: float
    weight: float  # the challenger's share when the decision was taken


def _draw(batch: _Batch, arm: Arm, control: Arm, n: int, judged: int) -> Window:
    batch.normal("judge_score", judged, arm.score_mean, arm.score_sd)
    log_mean, log_sd = batch.normal("log_latency", n, arm.log_latency_mean, arm.log_latency_sd)
    control_p95 = control.log_latency_mean + _Z95 * control.log_latency_sd
    batch.bernoulli("over_control_p95", n, float(special.ndtr((arm.log_latency_mean - control_p95)
                                                              / arm.log_latency_sd)))
    batch.normal("cost", n, arm.cost_mean, arm.cost_sd)
    errors = batch.bernoulli("error", n, arm.error)
    schema = batch.bernoulli("schema_failure", n, arm.schema_failure)
    batch.bernoulli("refusal", n, arm.refusal)
    return Window(n, errors, math.exp(log_mean + _Z95 * log_sd), schema)


def simulate(policy: CanaryPolicy, control: Arm, treatment: Arm, *, rng: np.random.Generator,
             users_per_look: int = 10_000, requests_per_user: int = 1, judged_share: float = 0.2,
             look_every_s: float = 86_400.0) -> Outcome:
    """Run one experiment to its end, looking every `look_every_s` of simulated time."""
    batches = {"control": _Batch(rng), "treatment": _Batch(rng)}
    units = {"control": 0, "treatment": 0}
    weight, elapsed, step_started, previous_p = policy.ramp[0], 0.0, 0.0, 1.0
    truth = {"control": control, "treatment": treatment}
    while True:
        elapsed += look_every_s
        treated = int(rng.binomial(users_per_look, weight))
        recent = {}
        for arm, users in (("treatment", treated), ("control", users_per_look - treated)):
            units[arm] += users
            n = max(users * requests_per_user, 2)
            recent[arm] = _draw(batches[arm], truth[arm], control, n, max(int(n * judged_share), 2))
        metrics: dict[str, dict[str, Moments]] = {}
        for arm, batch in batches.items():
            for name, sums in batch.sums.items():
                metrics.setdefault(name, {})[arm] = sums.moments()
        snapshot = Snapshot(weight, elapsed, elapsed - step_started, dict(units), metrics, recent)
        decision = decide(policy, snapshot, previous_p)
        if decision.primary is not None:
            previous_p = decision.primary.p_value
        if decision.final:
            return Outcome(decision, elapsed, weight)
        if decision.action == "ramp":
            weight, step_started = decision.weight, elapsed
            units = {"control": 0, "treatment": 0}  # SRM is checked per allocation step


def assigned_share(weight: float, units: int, key: str = "sim", salt: str = "s") -> float:
    """The share of `units` synthetic user ids the sticky hash puts in treatment at `weight`."""
    return sum(arm_for(bucket(key, salt, f"user-{i}"), weight) == "treatment" for i in range(units)) / units
