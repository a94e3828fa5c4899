"""Canary decisions: ramp, circuit breakers, SRM, guardrails with margins, the always-valid primary test.

`decide(policy, snapshot)` is the whole rule (reference eval_ab.md §7.3); the flow and the simulation both
call it. Order: circuit breakers, SRM, harmful guardrails and a harmful primary roll back at any time; a clean
step ramps; at the last step after the minimum duration a primary whose confidence sequence lies above zero
with every guardrail non-inferior promotes; the maximum duration stops the experiment as inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import special

from tasks.release.ab import Moments, Sequence, confidence_sequence, srm_p_value, verdict

DAY = 86_400.0


class Guardrail(BaseModel):
    """A metric where higher is worse. `relative` margins are a share of the control mean; else absolute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    margin: float = Field(gt=0)
    relative: bool = False


def _default_guardrails() -> dict[str, Guardrail]:
    # latency twice: its typical level (geometric mean within +15 %) and its tail (at most 7 % of requests
    # slower than the control's p95, where control has 5 %)
    return {"error": Guardrail(margin=0.005), "log_latency": Guardrail(margin=math.log(1.15)),
            "over_control_p95": Guardrail(margin=0.02),
            "cost": Guardrail(margin=0.10, relative=True), "schema_failure": Guardrail(margin=0.005),
            "refusal": Guardrail(margin=0.01)}


class Breakers(BaseModel):
    """Absolute limits over the recent window: any one sets the challenger's weight to 0 at once. Rates must
    be past the limit beyond reasonable doubt (one-sided 99.9 %), so a few unlucky errors in a small
    window do not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_ratio: float = 2.0
    latency_p95_ratio: float = 2.0
    schema_failure_rate: float = 0.05
    min_requests: int = 200
    confidence: float = 0.999  # a rate trips only when its Clopper-Pearson lower bound is past the limit


class CanaryPolicy(BaseModel):
    """The pre-registered plan of one canary. Durations in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ramp: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.10])
    step_s: float = Field(default=2 * DAY, gt=0)
    min_duration_s: float = Field(default=7 * DAY, ge=0)
    max_duration_s: float = Field(default=28 * DAY, gt=0)
    primary: str = "judge_score"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    tau: float = Field(default=0.1, gt=0)
    min_n: int = Field(default=100, ge=2)
    srm_alpha: float = Field(default=0.001, gt=0, lt=1)
    guardrails: dict[str, Guardrail] = Field(default_factory=_default_guardrails)
    breakers: Breakers = Field(default_factory=Breakers)
    approval: bool = False

    @field_validator("ramp")
    @classmethod
    def _rising(cls, ramp: list[float]) -> list[float]:
        if not ramp or any(not 0 < w <= 1 for w in ramp) or ramp != sorted(set(ramp)):
            raise ValueError(f"ramp must be rising shares in (0, 1], got {ramp}")
        return ramp


@dataclass(frozen=True)
class Window:
    """One arm over the recent window, for the circuit breakers."""

    requests: int
    error_rate: float
    p95_ms: float
    schema_failure_rate: float


@dataclass(frozen=True)
class Snapshot:
    """What the canary knows at one look. `metrics` maps metric -> arm -> moments (guardrails and primary);
    `units` counts the distinct units seen per arm during the current ramp step (the SRM check's input)."""

    weight: float
    elapsed_s: float
    step_elapsed_s: float
    units: dict[str, int]
    metrics: dict[str, dict[str, Moments]]
    recent: dict[str, Window] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    action: str  # continue | ramp | promote | rollback | inconclusive
    weight: float
    reason: str
    primary: Sequence | None = None
    guardrails: dict[str, str] = field(default_factory=dict)
    srm_p: float = 1.0

    @property
    def final(self) -> bool:
        return self.action in ("promote", "rollback", "inconclusive")


def tripped_breakers(breakers: Breakers, recent: dict[str, Window]) -> list[str]:
    treatment, control = recent.get("treatment"), recent.get("control")
    if (treatment is None or control is None
            or min(treatment.requests, control.requests) < breakers.min_requests):
        return []
    fired = []
    def surely_above(rate: float, limit: float) -> bool:
        k = round(rate * treatment.requests)
        return k > 0 and special.betaincinv(k, treatment.requests - k + 1, 1 - breakers.confidence) > limit

    if surely_above(treatment.error_rate, breakers.error_ratio * max(control.error_rate, 1e-3)):
        fired.append(f"error rate {treatment.error_rate:.1%} > {breakers.error_ratio:g}x control "
                     f"{control.error_rate:.1%}")
    if control.p95_ms > 0 and treatment.p95_ms > breakers.latency_p95_ratio * control.p95_ms:
        fired.append(f"p95 latency {treatment.p95_ms:.0f} ms > {breakers.latency_p95_ratio:g}x control "
                     f"{control.p95_ms:.0f} ms")
    if surely_above(treatment.schema_failure_rate, breakers.schema_failure_rate):
        fired.append(f"schema failures {treatment.schema_failure_rate:.1%} > "
                     f"{breakers.schema_failure_rate:.0%}")
    return fired


def guardrail_verdicts(policy: CanaryPolicy, snapshot: Snapshot) -> dict[str, str]:
    verdicts = {}
    for name, rail in policy.guardrails.items():
        arms = snapshot.metrics.get(name) or {}
        if all(arms.get(arm, Moments(0, 0.0, 0.0)).n == 0 for arm in ("treatment", "control")):
            verdicts[name] = "n/a"  # not measured in this traffic (e.g. no JSON requests): nothing to guard
            continue
        if "treatment" not in arms or "control" not in arms:
            verdicts[name] = "unknown"
            continue
        sequence = confidence_sequence(arms["treatment"], arms["control"], alpha=policy.alpha,
                                       tau=rail.margin, min_n=policy.min_n)
        margin = rail.margin * abs(arms["control"].mean) if rail.relative else rail.margin
        verdicts[name] = verdict(sequence, max(margin, 1e-12), higher_is_worse=True)
    return verdicts


def _next_step(policy: CanaryPolicy, weight: float) -> float | None:
    return next((w for w in policy.ramp if w > weight + 1e-9), None)


def decide(policy: CanaryPolicy, snapshot: Snapshot, previous_p: float = 1.0) -> Decision:
    """The canary's next move; weights in the result are the challenger's new share (0 on the way out)."""
    arms = snapshot.metrics.get(policy.primary, {})
    primary = None
    if "treatment" in arms and "control" in arms:
        primary = confidence_sequence(arms["treatment"], arms["control"], alpha=policy.alpha, tau=policy.tau,
                                      min_n=policy.min_n, previous_p=previous_p)
    rails = guardrail_verdicts(policy, snapshot)
    srm = srm_p_value(snapshot.units, {"treatment": snapshot.weight, "control": 1 - snapshot.weight})

    def made(action: str, weight: float, reason: str) -> Decision:
        return Decision(action, weight, reason, primary, rails, srm)

    if fired := tripped_breakers(policy.breakers, snapshot.recent):
        return made("rollback", 0.0, "circuit breaker: " + "; ".join(fired))
    if srm < policy.srm_alpha:
        return made("rollback", 0.0, f"sample ratio mismatch (p={srm:.2g}) at weight {snapshot.weight:.0%}: "
                                     f"units {snapshot.units}")
    if harmful := [name for name, v in rails.items() if v == "harmful"]:
        return made("rollback", 0.0, "guardrail beyond its margin: " + ", ".join(harmful))
    if primary is not None and primary.high < 0:
        return made("rollback", 0.0, f"{policy.primary} worse: {_interval(primary)}")
    step = _next_step(policy, snapshot.weight)
    if step is not None and snapshot.step_elapsed_s >= policy.step_s:
        return made("ramp", step, f"step at {snapshot.weight:.0%} clean for "
                                  f"{snapshot.step_elapsed_s / 3600:.1f} h")
    mature = step is None and snapshot.elapsed_s >= policy.min_duration_s
    if (mature and primary is not None and primary.low > 0
            and all(v in ("fine", "n/a") for v in rails.values())):
        return made("promote", 1.0, f"{policy.primary} better: {_interval(primary)}; guardrails non-inferior")
    if snapshot.elapsed_s >= policy.max_duration_s:
        shown = _interval(primary) if primary is not None else "no data"
        return made("inconclusive", 0.0, f"maximum duration reached without a decision: {shown}")
    return made("continue", snapshot.weight, "collecting")


def _interval(sequence: Sequence) -> str:
    return f"Δ={sequence.delta:+.3f} CS [{sequence.low:+.3f}, {sequence.high:+.3f}] p={sequence.p_value:.3g}"
