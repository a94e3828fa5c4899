"""A/B statistics: sticky assignment by hashing, an always-valid sequential test, SRM, non-inferiority.

Assignment (reference eval_ab.md §5.5): `bucket = fnv1a32(f"{key}:{salt}:{unit}") % 10000`, treatment iff
`bucket < round(10000 * weight)`, so a ramp only ever adds users to the treatment arm.

The sequential test is the normal-mixture mSPRT (Johari et al. 2017) on a difference of means with estimated
variance `v = s_t²/n_t + s_c²/n_c`: with a N(0, τ²) mixing prior the likelihood ratio is
`Λ = sqrt(v/(v+τ²)) · exp(τ²(Δ̂-θ)²/(2v(v+τ²)))`; rejecting θ once Λ ≥ 1/α keeps the type-I error at α under
any stopping rule. Inverting it gives a confidence sequence, which is what the canary decides on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

BUCKETS = 10_000
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(text: str) -> int:
    value = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def bucket(experiment_key: str, salt: str, unit_id: str) -> int:
    return fnv1a32(f"{experiment_key}:{salt}:{unit_id}") % BUCKETS


def arm_for(bucket_value: int, weight: float) -> str:
    """`treatment` when the bucket is below the treatment share (weight in [0, 1]), else `control`."""
    return "treatment" if bucket_value < round(BUCKETS * weight) else "control"


@dataclass(frozen=True)
class Moments:
    """Count, mean and unbiased variance of one arm's metric: all the sequential test needs."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, values: np.ndarray | list[float]) -> Moments:
        data = np.asarray(values, dtype=float)
        if data.size == 0:
            return cls(0, 0.0, 0.0)
        return cls(int(data.size), float(data.mean()), float(data.var(ddof=1)) if data.size > 1 else 0.0)


@dataclass(frozen=True)
class Sequence:
    """One look of the always-valid analysis of treatment minus control."""

    n_treatment: int
    n_control: int
    delta: float
    low: float
    high: float
    p_value: float

    @property
    def ready(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def msprt_lambda(delta: float, v: float, tau2: float, theta: float = 0.0) -> float:
    """The mixture likelihood ratio for H0: difference == theta."""
    log_lambda = 0.5 * math.log(v / (v + tau2)) + tau2 * (delta - theta) ** 2 / (2 * v * (v + tau2))
    return math.exp(min(log_lambda, 700.0))


def confidence_sequence(treatment: Moments, control: Moments, *, alpha: float = 0.05, tau: float = 0.1,
                        min_n: int = 30, previous_p: float = 1.0) -> Sequence:
    """The (1-α) confidence sequence for mean(treatment) - mean(control); `tau` is the plausible effect size.

    Undefined (infinite bounds, p=previous_p) until each arm has `min_n` observations: the variance estimate
    is plug-in, and the guarantee is asymptotic.
    """
    delta = treatment.mean - control.mean
    if min(treatment.n, control.n) < max(min_n, 2):
        return Sequence(treatment.n, control.n, delta, -math.inf, math.inf, previous_p)
    v = treatment.var / treatment.n + control.var / control.n
    if v <= 0.0:  # identical constants in both arms: no evidence of a difference either way
        v = 1e-12
    tau2 = tau * tau
    half = math.sqrt(2 * v * (v + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * math.log((v + tau2) / v)))
    p_value = min(previous_p, 1.0 / max(msprt_lambda(delta, v, tau2), 1.0))
    return Sequence(treatment.n, control.n, delta, delta - half, delta + half, p_value)


def srm_p_value(counts: dict[str, int], weights: dict[str, float]) -> float:
    """Chi-square goodness of fit of unique units per arm against the configured shares
    (1.0 when untestable)."""
    arms = [arm for arm in weights if weights[arm] > 0]
    observed = np.array([counts.get(arm, 0) for arm in arms], dtype=float)
    total = observed.sum()
    if len(arms) < 2 or total == 0:
        return 1.0
    shares = np.array([weights[arm] for arm in arms], dtype=float)
    expected = total * shares / shares.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(special.chdtrc(len(arms) - 1, statistic))


def verdict(sequence: Sequence, margin: float, *, higher_is_worse: bool) -> str:
    """Non-inferiority of a guardrail: `harmful` when the whole sequence lies beyond the margin, `fine` when
    it lies entirely on the good side of it, else `unknown`. The margin is in the metric's units."""
    if not sequence.ready:
        return "unknown"
    low, high = (sequence.low, sequence.high) if higher_is_worse else (-sequence.high, -sequence.low)
    if low > margin:
        return "harmful"
    if high < margin:
        return "fine"
    return "unknown"
