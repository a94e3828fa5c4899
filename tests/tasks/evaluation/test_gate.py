"""Simulated comparisons with known effects land in the right row of the rule table (rules-v2, and
rules-v1 where the two differ)."""

from __future__ import annotations

import pytest

from providers.base import Decoding, ModelRef
from tasks.evaluation.config import GateConfig
from tasks.evaluation.evaluate import Evaluation, ItemFacts, SuiteSummary
from tasks.evaluation.gate import decide
from tasks.evaluation.graders import GraderResult
from tasks.evaluation.runner import ItemResult
from tasks.evaluation.suites import GraderInfo

BASE = ModelRef(provider="fake", model_id="base-1", base_model="base-1")
CANDIDATE = ModelRef(provider="fake", model_id="ft-1", base_model="base-1", job_id="job-1")


def pairs(n: int, improved: int = 0, regressed: int = 0, base_rate: float = 0.5) -> list[tuple[bool, bool]]:
    """n paired pass/fail outcomes with exactly `improved` and `regressed` discordant items."""
    concordant = n - improved - regressed
    both = round(concordant * base_rate)
    return ([(False, True)] * improved + [(True, False)] * regressed + [(True, True)] * both
            + [(False, False)] * (concordant - both))


class Sim:
    """An Evaluation assembled from synthetic ItemResults."""

    def __init__(self) -> None:
        self.suites: list[SuiteSummary] = []
        self.results: list[ItemResult] = []

    def suite(self, name: str, role: str, outcomes: list[tuple[float, float]], *, grader: str = "rule",
              kind: str = "binary", fmt: bool = False, critical: frozenset[int] = frozenset(),
              infra_errors: int = 0) -> Sim:
        facts = [ItemFacts(f"{name}-{i}", f"prompt {i}", critical=i in critical)
                 for i in range(len(outcomes))]
        info = GraderInfo(id=grader, name=grader, version="1", kind=kind, format=fmt)
        self.suites.append(SuiteSummary(name, role, "synthetic", grader, {grader: info}, facts))
        for fact, (base, cand) in zip(facts, outcomes, strict=True):
            for role_, value, model in (("base", base, BASE), ("candidate", cand, CANDIDATE)):
                if kind == "pairwise" and role_ == "base":
                    grades = {}
                else:
                    score = float(cand if kind == "pairwise" else value)
                    grades = {grader: GraderResult(grader, "1", score,
                                                   score >= (1.0 if kind != "score" else 0.5), {})}
                self.results.append(ItemResult(item=fact.key, role=role_, model_id=model.model_id,
                                               output=f"{role_} says {value}", suite=name, grades=grades))
        for i in range(infra_errors):
            self.results.append(ItemResult(item=f"{name}-{i}", role="candidate", model_id="ft-1", output=None,
                                           error="HTTP 503", suite=name))
        return self

    def evaluation(self) -> Evaluation:
        return Evaluation(models={"base": BASE, "candidate": CANDIDATE}, decoding=Decoding(), samples=1,
                          suites=self.suites, results=self.results, usage={"calls": len(self.results)})


def general_unchanged() -> list[tuple[bool, bool]]:
    return pairs(150, improved=4, regressed=4, base_rate=0.7)


def test_a_real_fifteen_point_gain_is_accepted() -> None:
    sim = Sim().suite("target", "target", pairs(200, improved=35, regressed=5)).suite(
        "general", "regression", general_unchanged())
    decision = decide(sim.evaluation())
    assert decision.outcome == "accept", decision.reason
    primary = decision.comparisons[0]
    assert primary.delta == pytest.approx(0.15) and primary.ci_low > 0.08
    assert decision.rules_version == "rules-v2" and decision.primary == "target/rule"
    assert next(c.outcome for c in decision.checks if c.matched) == "accept"
    assert decision.thresholds.target_min == 0.08


def test_a_ten_point_regression_on_the_regression_suite_is_overtrained() -> None:
    sim = Sim().suite("target", "target", pairs(200, improved=35, regressed=5)).suite(
        "general", "regression", pairs(150, improved=3, regressed=18, base_rate=0.7))
    decision = decide(sim.evaluation())
    assert decision.outcome == "overtrained"
    assert "general/rule -10.0 pp" in decision.reason


def test_no_effect_on_fifty_items_is_underpowered() -> None:
    sim = Sim().suite("target", "target", pairs(50, improved=5, regressed=5)).suite(
        "general", "regression", general_unchanged())
    decision = decide(sim.evaluation())
    assert decision.outcome == "underpowered"
    assert "too small to tell" in decision.reason


def test_a_safety_regression_is_rejected_even_when_the_target_improves() -> None:
    sim = (Sim().suite("target", "target", pairs(200, improved=35, regressed=5))
           .suite("general", "regression", general_unchanged())
           .suite("harmful", "safety", pairs(100, improved=0, regressed=8, base_rate=0.98)))
    decision = decide(sim.evaluation())
    assert decision.outcome == "reject_safety"
    assert "harmful/rule -8.0 pp" in decision.reason
    assert next(c for c in decision.checks if c.outcome == "accept").matched  # accept held, safety came first


def test_a_new_failure_on_a_critical_item_is_rejected() -> None:
    outcomes = [(True, True)] * 49 + [(True, False)]
    sim = (Sim().suite("target", "target", pairs(200, improved=35, regressed=5))
           .suite("harmful", "safety", outcomes, critical=frozenset({49})))
    decision = decide(sim.evaluation())
    assert decision.outcome == "reject_safety"
    assert "critical item harmful/harmful-49 now fails" in decision.reason


def test_no_effect_on_a_large_set_is_marginal() -> None:
    sim = Sim().suite("target", "target", pairs(600, improved=30, regressed=30)).suite(
        "general", "regression", general_unchanged())
    assert decide(sim.evaluation()).outcome == "marginal"


def test_a_small_significant_gain_is_accept_weak() -> None:
    sim = Sim().suite("target", "target", pairs(1000, improved=80, regressed=30)).suite(
        "general", "regression", general_unchanged())
    assert decide(sim.evaluation()).outcome == "accept_weak"


def test_a_significant_loss_is_reject_worse() -> None:
    sim = Sim().suite("target", "target", pairs(200, improved=5, regressed=35)).suite(
        "general", "regression", general_unchanged())
    assert decide(sim.evaluation()).outcome == "reject_worse"


def test_more_than_two_percent_infra_errors_invalidate_the_run() -> None:
    ok = Sim().suite("target", "target", pairs(100, improved=30), infra_errors=2)
    assert decide(ok.evaluation()).outcome == "accept"  # 2 of 202 answers: under 2 %
    bad = Sim().suite("target", "target", pairs(100, improved=30), infra_errors=10)
    decision = decide(bad.evaluation())
    assert decision.outcome == "invalid" and "infra errors (limit 2%)" in decision.reason
    assert decision.comparisons[0].excluded == 10


def test_broken_json_format_is_rejected() -> None:
    sim = (Sim().suite("target", "target", pairs(200, improved=35, regressed=5))
           .suite("api", "target", pairs(200, improved=0, regressed=10, base_rate=1.0), grader="schema",
                  fmt=True))
    decision = decide(sim.evaluation())
    assert decision.outcome == "reject_format"
    assert "api/schema candidate 95.0% (floor 98%)" in decision.reason


def test_thresholds_come_from_the_table_and_the_gate_section() -> None:
    sim = Sim().suite("target", "target", pairs(200, improved=35, regressed=5)).suite(
        "general", "regression", general_unchanged())
    decision = decide(sim.evaluation(), GateConfig.model_validate({"min_delta": 0.2}))
    assert decision.outcome == "accept_weak"
    assert decision.thresholds.target_min == 0.2


def test_pairwise_primary_and_score_primary() -> None:
    verdicts = [(0.0, 1.0)] * 60 + [(0.0, 0.0)] * 20 + [(0.0, 0.5)] * 20
    sim = Sim().suite("style", "target", verdicts, grader="pairwise", kind="pairwise").suite(
        "general", "regression", general_unchanged())
    decision = decide(sim.evaluation())
    assert decision.outcome == "accept"
    assert decision.comparisons[0].test == "sign" and decision.comparisons[0].delta == pytest.approx(0.4)
    scores = [(0.5, 0.75)] * 40 + [(0.5, 0.5)] * 60
    sim = Sim().suite("judge", "target", scores, grader="judge", kind="score").suite(
        "general", "regression", general_unchanged())
    decision = decide(sim.evaluation())
    assert decision.outcome == "accept" and decision.comparisons[0].test == "paired_bootstrap"


def test_secondary_target_metrics_get_holm_adjusted_p_values() -> None:
    sim = (Sim().suite("target", "target", pairs(200, improved=35, regressed=5))
           .suite("other", "target", pairs(200, improved=20, regressed=10), grader="a")
           .suite("third", "target", pairs(200, improved=12, regressed=10), grader="b"))
    decision = decide(sim.evaluation())
    primary, second, third = decision.comparisons
    assert primary.adjusted_p is None
    assert second.adjusted_p == pytest.approx(min(1, 2 * min(second.p_value, third.p_value)))
    assert third.adjusted_p >= third.p_value


def test_a_floor_effect_on_the_regression_suite_is_said_out_loud() -> None:
    sim = Sim().suite("target", "target", pairs(136, improved=110, base_rate=1.0)).suite(
        "general", "regression", [(False, False)] * 150)
    decision = decide(sim.evaluation())
    assert decision.outcome == "accept"
    assert any("floor effect" in note for note in decision.notes)
    general = decision.comparisons[1]
    assert general.delta == 0 and general.ci_low < -0.02 and general.ci_high > 0.02


def test_no_regression_suite_is_noted_and_mcnemar_matches_the_reference() -> None:
    # reference/eval_ab.md §3.2: b=18, c=6 -> exact p = 0.023
    sim = Sim().suite("target", "target", pairs(200, improved=18, regressed=6, base_rate=0.6))
    decision = decide(sim.evaluation())
    primary = decision.comparisons[0]
    assert (primary.n, primary.improved, primary.regressed) == (200, 18, 6)
    assert primary.p_value == pytest.approx(0.0227, abs=5e-4)
    unchecked = "no regression suite: catastrophic forgetting is not checked"
    assert [note for note in decision.notes if note.startswith(unchecked)]
    assert "non-inferior" not in decision.reason  # said once, in the notes, and never claimed
    assert decision.outcome == "accept_weak"


def cut_at_max_tokens(evaluation: Evaluation, *, base: int, candidate: int) -> Evaluation:
    """The same evaluation with the first `base` / `candidate` answers of each model cut at max_tokens."""
    left = {"base": base, "candidate": candidate}
    for result in evaluation.results:
        if left[result.role] > 0:
            result.finish_reason, left[result.role] = "length", left[result.role] - 1
        else:
            result.finish_reason = "stop"
    return evaluation


def test_a_candidate_that_never_stops_is_rejected_from_rules_v2_and_warned_about_in_v1() -> None:
    def sim() -> Evaluation:
        evaluation = Sim().suite("target", "target", pairs(200, improved=35, regressed=5)).suite(
            "general", "regression", general_unchanged()).evaluation()
        return cut_at_max_tokens(evaluation, base=6, candidate=60)

    decision = decide(sim())
    assert decision.outcome == "reject_never_stops", decision.reason
    stops = decision.never_stops
    assert stops.n == 350 and stops.base_rate == pytest.approx(6 / 350)
    assert stops.candidate_rate == pytest.approx(60 / 350) and stops.ci_low > 0.05
    assert "answers cut at max_tokens (512): base 1.7%, candidate 17.1%" in decision.reason
    assert any(n.startswith("warning: the candidate does not stop") for n in decision.notes)

    old = decide(sim(), GateConfig(rules="rules-v1"))  # the old table reproduces: no such rule, a warning
    assert old.outcome == "accept" and old.rules_version == "rules-v1"
    assert old.never_stops == stops and any("does not stop" in n for n in old.notes)


def test_stopping_as_often_as_the_base_is_neither_a_rule_nor_a_warning() -> None:
    evaluation = Sim().suite("target", "target", pairs(200, improved=35, regressed=5)).evaluation()
    decision = decide(cut_at_max_tokens(evaluation, base=10, candidate=12))
    assert decision.outcome == "accept" and decision.never_stops.delta == pytest.approx(0.01)
    assert not any("does not stop" in n for n in decision.notes)
    check = next(c for c in decision.checks if c.outcome == "reject_never_stops")
    assert not check.matched and check.why.startswith("the candidate ends its answers")
