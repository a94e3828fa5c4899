"""The statistics against published or hand-derived values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t

from tasks.evaluation.stats import (
    cohen_kappa,
    holm,
    mcnemar_exact,
    mde_binary,
    mde_continuous,
    newcombe_paired,
    paired_binary,
    paired_scores,
    pairwise_wins,
    wilson,
)


@pytest.mark.parametrize(("improved", "regressed", "p"), [(18, 6, 0.023), (25, 12, 0.047), (30, 20, 0.20)])
def test_mcnemar_exact_matches_the_reference_examples(improved: int, regressed: int, p: float) -> None:
    # reference/eval_ab.md §3.2 (computed with scipy.stats.binomtest there too)
    assert f"{mcnemar_exact(improved, regressed):.2g}" == f"{p:.2g}"
    assert mcnemar_exact(0, 0) == 1.0


def test_wilson_interval_of_zero_successes() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)


def test_newcombe_paired_interval_matches_the_published_example() -> None:
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, ch. 8: Cavo et al. (2012),
    # table [[59, 6], [16, 80]] -> -0.0621 (95% CI -0.1186 to -0.0046) (R package contingencytables)
    low, high = newcombe_paired(both=59, improved=6, regressed=16, neither=80)
    assert (low, high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    result = paired_binary([True] * 65 + [False] * 96, [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80)
    assert result.delta == pytest.approx(-0.0621, abs=5e-5)
    assert (result.improved, result.regressed, result.n) == (6, 16, 161)


def test_no_discordant_items_still_leaves_an_honest_interval() -> None:
    result = paired_binary([False] * 150, [False] * 150)
    assert result.delta == 0 and result.p_value == 1.0
    assert result.ci_low == pytest.approx(-wilson(0, 150)[1]) and \
        result.ci_high == pytest.approx(wilson(0, 150)[1])
    assert 0.02 < result.ci_high < 0.03


@pytest.mark.parametrize(("n", "psi", "mde"), [
    (200, 0.10, 0.062), (200, 0.20, 0.088), (100, 0.20, 0.124), (500, 0.30, 0.068), (300, 0.05, 0.036),
    (100, 0.05, None), (50, 0.0, None),
])
def test_minimum_detectable_effect_matches_the_reference_table(n: int, psi: float, mde: float | None) -> None:
    # reference/eval_ab.md §3.3 (Connor 1987; alpha .05 two-sided, power .8)
    got = mde_binary(n, psi)
    assert got == (None if mde is None else pytest.approx(mde, abs=6e-4))


@pytest.mark.parametrize(("n", "mde"), [(100, 0.28), (200, 0.20), (500, 0.125)])
def test_continuous_mde_matches_the_reference(n: int, mde: float) -> None:
    assert mde_continuous(n, 1.0) == pytest.approx(mde, abs=2e-3)
    assert mde_continuous(n, 0.0) is None


def test_holm_adjustment_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x -> 0.02, 0.03, 0.06, max(0.04, 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_paired_bootstrap_agrees_with_the_t_interval_and_is_reproducible() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 400)
    cand = np.clip(base + rng.normal(0.05, 0.2, 400), 0, 1)
    result = paired_scores(cand, base, seed=3)
    diff = cand - base
    half = student_t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    assert result.ci_low == pytest.approx(diff.mean() - half, abs=0.004)
    assert result.ci_high == pytest.approx(diff.mean() + half, abs=0.004)
    assert result.p_value < 0.01 and result.test == "paired_bootstrap"
    assert paired_scores(cand, base, seed=3) == result


def test_constant_differences_do_not_break_the_bootstrap() -> None:
    same = paired_scores([0.5] * 20, [0.5] * 20)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1.0)


def test_pairwise_wins_are_a_sign_test_with_net_win_rate() -> None:
    verdicts = [1.0] * 30 + [0.0] * 10 + [0.5] * 10
    result = pairwise_wins(verdicts, seed=1)
    assert result.delta == pytest.approx(0.4)
    assert result.candidate_value == pytest.approx(0.7)
    assert result.p_value == pytest.approx(mcnemar_exact(30, 10))
    assert result.ci_low < 0.4 < result.ci_high and result.ci_low > 0


def test_cohen_kappa_matches_the_textbook_examples() -> None:
    # the two-rater yes/no tables: (20, 5, 10, 15) -> 0.4; (45, 15, 25, 15) -> 0.1304;
    # (25, 35, 5, 35) -> 0.2593
    def raters(yy: int, yn: int, ny: int, nn: int) -> tuple[list[str], list[str]]:
        a = ["yes"] * (yy + yn) + ["no"] * (ny + nn)
        b = ["yes"] * yy + ["no"] * yn + ["yes"] * ny + ["no"] * nn
        return a, b

    assert cohen_kappa(*raters(20, 5, 10, 15)) == pytest.approx(0.4)
    assert cohen_kappa(*raters(45, 15, 25, 15)) == pytest.approx(0.1304, abs=1e-4)
    assert cohen_kappa(*raters(25, 35, 5, 35)) == pytest.approx(0.2593, abs=1e-4)
    with pytest.raises(ValueError, match="undefined"):
        cohen_kappa(["pass"] * 3, ["pass"] * 3)
