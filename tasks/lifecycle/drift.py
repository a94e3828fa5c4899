"""Input drift between the training data and a window of recent inputs, with the population stability index.

PSI = sum_i (p_i - q_i) * ln(p_i / q_i) over bins, p the current share and q the reference share of bin i;
empty bins get a small epsilon. Two features, neither needing embeddings: the prompt's token length (bins at
the reference's deciles) and its words (hashed unigrams and bigrams into a fixed number of buckets, a
categorical distribution). The usual reading: below 0.1 no real change, 0.1-0.25 moderate (watch), above 0.25
major. PSI grows with sample size and with sparse bins, so a window below `min_samples` is reported,
never alerted.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.data.tokens import TokenCounter

_EPSILON = 1e-4
_WORD = re.compile(r"\w+", re.UNICODE)

Level = Literal["ok", "warn", "alert", "too_few"]


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warn: float = Field(default=0.1, gt=0, description="PSI at or above which a feature is worth watching")
    alert: float = Field(default=0.25, gt=0, description="PSI at or above which a feature has drifted")
    bins: int = Field(default=10, ge=2, le=100, description="token-length bins (quantiles of the reference)")
    buckets: int = Field(default=64, ge=8, le=4096, description="hash buckets of the lexical distribution")
    min_samples: int = Field(default=50, ge=1, description="fewer inputs in the window: no alert, too few")

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.alert < self.warn:
            raise ValueError(f"alert ({self.alert}) must not be below warn ({self.warn})")
        return self


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    level: Level
    reference_n: int
    current_n: int
    detail: str


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two histograms (counts or shares over the same bins)."""
    q = _shares(reference)
    p = _shares(current)
    return float(np.sum((p - q) * np.log(p / q)))


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    shares = counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))
    shares = np.maximum(shares, _EPSILON)
    return shares / shares.sum()


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (ties merged), so each bin holds about 1/bins of it."""
    inner = np.quantile(np.asarray(reference, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def numeric_psi(reference: Sequence[float], current: Sequence[float], bins: int) -> float:
    edges = quantile_edges(np.asarray(reference), bins)
    # right-closed bins: a value equal to an edge (common with integer lengths) falls with the values below it
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    return psi(ref_counts, cur_counts)


def _bucket(term: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") % buckets


def lexical_histogram(texts: Iterable[str], buckets: int) -> np.ndarray:
    """Counts of hashed word unigrams and bigrams (lower-cased) over `buckets` buckets."""
    counts = np.zeros(buckets, dtype=float)
    for text in texts:
        words = _WORD.findall(text.lower())
        for term in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
            counts[_bucket(term, buckets)] += 1
    return counts


def _level(value: float, current_n: int, config: DriftConfig) -> Level:
    if current_n < config.min_samples:
        return "too_few"
    return "alert" if value >= config.alert else "warn" if value >= config.warn else "ok"


def input_drift(reference: list[str], current: list[str], counter: TokenCounter, config: DriftConfig
                ) -> list[FeatureDrift]:
    """Token-length and lexical PSI of `current` prompts against `reference` prompts."""
    if not reference or not current:
        return []
    ref_len = np.array([counter.encode_length(t) for t in reference])
    cur_len = np.array([counter.encode_length(t) for t in current])
    length_psi = numeric_psi(ref_len, cur_len, config.bins)
    lexical_psi = psi(lexical_histogram(reference, config.buckets),
                      lexical_histogram(current, config.buckets))
    n_ref, n_cur = len(reference), len(current)
    return [
        FeatureDrift("prompt_tokens", length_psi, _level(length_psi, n_cur, config), n_ref, n_cur,
                     f"mean {ref_len.mean():.0f} -> {cur_len.mean():.0f} tokens, p95 "
                     f"{np.percentile(ref_len, 95):.0f} -> {np.percentile(cur_len, 95):.0f} "
                     f"({counter.name})"),
        FeatureDrift("lexical", lexical_psi, _level(lexical_psi, n_cur, config), n_ref, n_cur,
                     f"hashed word unigrams+bigrams in {config.buckets} buckets"),
    ]
