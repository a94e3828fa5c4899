"""Paired statistics for "did the candidate beat the base on the same items" (reference/eval_ab.md §3).

Binary outcomes: McNemar's exact test on the discordant pairs and Newcombe's square-and-add interval for
the paired difference (Newcombe 1998, method 10, with its continuity-corrected correlation), which keeps a
sensible width when no item is discordant. Scores: a paired percentile bootstrap over items. Pairwise
verdicts: a sign test on wins against losses. Secondary metrics: Holm's step-down adjustment. Power: the
minimum detectable effect for the eval size (Connor 1987 for paired binary outcomes). Agreement with human
labels: Cohen's kappa. Every function is pure; the bootstrap takes a seed, so a decision is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binomtest, bootstrap, norm


@dataclass(frozen=True)
class Paired:
    """A paired comparison: `delta` = candidate - base with its interval and a two-sided p-value.

    `improved`/`regressed` count items the candidate won/lost (discordant pairs; for scores, items whose
    difference is positive/negative). `spread` is the discordant share (binary) or the standard deviation
    of the per-item differences (scores); the minimum detectable effect is computed from it.
    """

    test: str
    n: int
    base_value: float
    candidate_value: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    improved: int
    regressed: int
    spread: float


def mcnemar_exact(improved: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value: b ~ Binomial(b + c, 1/2); 1.0 when no pair is discordant."""
    discordant = improved + regressed
    return float(binomtest(improved, discordant, 0.5).pvalue) if discordant else 1.0


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for one proportion."""
    if n == 0:
        return 0.0, 1.0
    z = norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired(both: int, improved: int, regressed: int, neither: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p_candidate - p_base from a paired 2x2 table (Newcombe 1998, method 10).

    `improved` = candidate passed where the base failed, `regressed` = the reverse.
    """
    n = both + improved + regressed + neither
    if n == 0:
        return -1.0, 1.0
    cand, base = both + improved, both + regressed
    p1, p2 = cand / n, base / n
    l1, u1 = wilson(cand, n, confidence)
    l2, u2 = wilson(base, n, confidence)
    phi = 0.0
    margins = cand * (n - cand) * base * (n - base)
    if margins:
        cross = both * neither - improved * regressed
        # Newcombe's continuity correction: a small positive association counts as none
        corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
        phi = corrected / math.sqrt(margins)
    delta = p1 - p2
    low = delta - math.sqrt(max((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2), 0.0))
    high = delta + math.sqrt(max((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1), 0.0))
    return max(low, -1.0), min(high, 1.0)


def paired_binary(candidate: Sequence[bool], base: Sequence[bool], *, confidence: float = 0.95) -> Paired:
    """McNemar exact + Newcombe interval over items that both models answered (same order)."""
    cand, ref = np.asarray(candidate, dtype=bool), np.asarray(base, dtype=bool)
    n = len(cand)
    both, improved = int(np.sum(cand & ref)), int(np.sum(cand & ~ref))
    regressed, neither = int(np.sum(~cand & ref)), int(np.sum(~cand & ~ref))
    low, high = newcombe_paired(both, improved, regressed, neither, confidence)
    return Paired(test="mcnemar_exact", n=n, base_value=(both + regressed) / n if n else 0.0,
                  candidate_value=(both + improved) / n if n else 0.0,
                  delta=(improved - regressed) / n if n else 0.0, ci_low=low, ci_high=high,
                  p_value=mcnemar_exact(improved, regressed), improved=improved, regressed=regressed,
                  spread=(improved + regressed) / n if n else 0.0)


def _bootstrap_mean(differences: np.ndarray, *, confidence: float, resamples: int, seed: int
                    ) -> tuple[float, float, float]:
    """Percentile CI of the mean difference and the bootstrap p-value 2 min(P(d* <= 0), P(d* >= 0))."""
    if len(differences) < 2 or np.all(differences == differences[0]):
        value = float(differences[0]) if len(differences) else 0.0
        return value, value, 1.0 if value == 0 else 0.0
    result = bootstrap((differences,), np.mean, n_resamples=resamples, confidence_level=confidence,
                       method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    means = result.bootstrap_distribution
    p_value = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), p_value


def paired_scores(candidate: Sequence[float], base: Sequence[float], *, confidence: float = 0.95,
                  resamples: int = 10_000, seed: int = 0) -> Paired:
    """Paired bootstrap (resampling items) of the mean score difference."""
    cand, ref = np.asarray(candidate, dtype=float), np.asarray(base, dtype=float)
    diff = cand - ref
    low, high, p_value = _bootstrap_mean(diff, confidence=confidence, resamples=resamples, seed=seed)
    n = len(diff)
    return Paired(test="paired_bootstrap", n=n, base_value=float(ref.mean()) if n else 0.0,
                  candidate_value=float(cand.mean()) if n else 0.0, delta=float(diff.mean()) if n else 0.0,
                  ci_low=low, ci_high=high, p_value=p_value, improved=int(np.sum(diff > 0)),
                  regressed=int(np.sum(diff < 0)), spread=float(diff.std(ddof=1)) if n > 1 else 0.0)


def pairwise_wins(verdicts: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000,
                  seed: int = 0) -> Paired:
    """Pairwise judge verdicts per item (1 candidate wins, 0.5 tie, 0 base wins).

    delta = (wins - losses) / n, the paired analogue of a pass-rate difference; sign test on wins against
    losses (ties excluded); bootstrap interval. `candidate_value` is the win rate (W + T/2) / n.
    """
    scores = np.asarray(verdicts, dtype=float)
    signs = 2 * scores - 1
    wins, losses = int(np.sum(scores == 1)), int(np.sum(scores == 0))
    low, high, _ = _bootstrap_mean(signs, confidence=confidence, resamples=resamples, seed=seed)
    n = len(scores)
    rate = float(scores.mean()) if n else 0.5
    return Paired(test="sign", n=n, base_value=1 - rate, candidate_value=rate,
                  delta=float(signs.mean()) if n else 0.0, ci_low=low, ci_high=high,
                  p_value=mcnemar_exact(wins, losses), improved=wins, regressed=losses,
                  spread=float(signs.std(ddof=1)) if n > 1 else 0.0)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def mde_binary(n: int, discordant_share: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest |p10 - p01| a paired binary comparison detects (Connor 1987); None when no effect is
    detectable with this many items at this discordant share (the effect cannot exceed the share)."""
    psi = discordant_share
    if n <= 0 or psi <= 0:
        return None
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)

    def gap(delta: float) -> float:
        return z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - delta * delta, 0.0)) - delta * math.sqrt(n)

    top = math.sqrt(psi)
    if gap(top) > 0:
        return None
    delta = brentq(gap, 1e-12, top)
    return delta if delta <= psi else None


def mde_continuous(n: int, sd_difference: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest mean paired difference detectable: (z_{1-alpha/2} + z_power) sd_d / sqrt(n)."""
    if n <= 1 or sd_difference <= 0:
        return None
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd_difference / math.sqrt(n))


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa between two raters' labels of the same items: (p_o - p_e) / (1 - p_e).

    Raises ValueError when it is undefined (no items, or both raters used one and the same label only).
    """
    if len(first) != len(second) or not first:
        raise ValueError(f"kappa needs two label lists of the same non-zero length, got {len(first)} "
                         f"and {len(second)}")
    labels = sorted(set(first) | set(second))
    a = np.array([labels.index(x) for x in first])
    b = np.array([labels.index(x) for x in second])
    observed = float(np.mean(a == b))
    expected = float(sum(np.mean(a == k) * np.mean(b == k) for k in range(len(labels))))
    if expected >= 1.0:
        raise ValueError("kappa is undefined when both raters give every item the same label")
    return (observed - expected) / (1 - expected)
