"""PSI on token lengths and hashed words: the same distribution stays quiet, a shifted window alerts."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.data.tokens import counter_for
from tasks.lifecycle.drift import DriftConfig, input_drift, lexical_histogram, numeric_psi, psi
from tasks.lifecycle.monitor import prompts_of
from tests.conftest import QUICKSTART

COUNTER = counter_for("chars/4")


def quickstart_prompts() -> list[str]:
    return prompts_of((QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines())


def test_psi_matches_the_formula_and_survives_empty_bins() -> None:
    assert psi(np.array([50, 50]), np.array([50, 50])) == pytest.approx(0.0)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(np.array([5, 5]), np.array([8, 2])) == pytest.approx(expected)
    assert np.isfinite(psi(np.array([10, 0]), np.array([0, 10])))  # epsilon, not infinity


def test_length_psi_uses_reference_quantiles() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(40, 5, 2000).round()
    assert numeric_psi(reference, rng.normal(40, 5, 500).round(), bins=10) < 0.1
    assert numeric_psi(reference, rng.normal(60, 5, 500).round(), bins=10) > 1.0


def test_a_window_like_the_training_data_is_quiet() -> None:
    prompts = quickstart_prompts()
    reference, current = prompts[::2], prompts[1::2]
    features = input_drift(reference, current, COUNTER, DriftConfig())
    assert {f.feature: f.level for f in features} == {"prompt_tokens": "ok", "lexical": "ok"}


def test_a_shifted_window_alerts_on_both_features() -> None:
    legal = [f"Draft clause {i} of the indemnification agreement between the licensor and licensee, covering "
             "liability caps, governing law, arbitration venue and termination for material breach."
             for i in range(80)]
    features = input_drift(quickstart_prompts(), legal, COUNTER, DriftConfig())
    assert {f.feature: f.level for f in features} == {"prompt_tokens": "alert", "lexical": "alert"}
    assert all(f.psi > 0.25 for f in features)
    assert "mean" in features[0].detail and "p95" in features[0].detail


def test_a_small_window_is_reported_but_never_alerts() -> None:
    features = input_drift(quickstart_prompts(), ["Explain quantum chromodynamics in detail."] * 5, COUNTER,
                           DriftConfig(min_samples=50))
    assert {f.level for f in features} == {"too_few"} and all(f.psi > 0.25 for f in features)


def test_lexical_histogram_counts_unigrams_and_bigrams() -> None:
    assert lexical_histogram(["a b c"], 16).sum() == 5


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="alert"):
        DriftConfig(warn=0.3, alert=0.2)
