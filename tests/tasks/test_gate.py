from __future__ import annotations

import pytest

from tasks.evaluation.graders import GraderResult
from tasks.evaluation.runner import ItemResult
from tasks.gate import compare, decide


def results(pairs: list[tuple[bool, bool]], errors: int = 0) -> list[ItemResult]:
    out = []
    for i, (base, cand) in enumerate(pairs):
        for role, passed in (("base", base), ("candidate", cand)):
            grade = GraderResult("rule", "1", float(passed), passed, {})
            out.append(ItemResult(item=f"i{i}", role=role, model_id=role, output="x", grades={"rule": grade}))
    for i in range(errors):
        out.append(ItemResult(item=f"e{i}", role="candidate", model_id="c", output=None, error="HTTP 500"))
    return out


def test_mcnemar_numbers_match_the_reference_examples() -> None:
    # eval_ab.md §3.2: b=18, c=6 -> exact p = 0.023
    pairs = [(False, True)] * 18 + [(True, False)] * 6 + [(True, True)] * 100 + [(False, False)] * 76
    comparison = compare(results(pairs), "rule")
    assert (comparison.n, comparison.improved, comparison.regressed) == (200, 18, 6)
    assert comparison.p_value == pytest.approx(0.0227, abs=5e-4)
    assert comparison.delta == pytest.approx(0.06)
    assert comparison.ci_low < comparison.delta < comparison.ci_high
    assert (comparison.base_passed, comparison.candidate_passed) == (106, 118)


def test_accept_reject_inconclusive() -> None:
    better = [(False, True)] * 30 + [(True, True)] * 70
    assert decide(results(better), ["rule"], "rule", alpha=0.05, min_delta=0.1).outcome == "accept"
    assert decide(results(better), ["rule"], "rule", alpha=0.05, min_delta=0.5).outcome == "inconclusive"
    worse = [(True, False)] * 30 + [(True, True)] * 70
    rejected = decide(results(worse), ["rule"], "rule", alpha=0.05, min_delta=0.0)
    assert rejected.outcome == "reject" and "delta -30.0 pp" in rejected.reason
    noise = [(False, True)] * 5 + [(True, False)] * 4 + [(True, True)] * 91
    assert decide(results(noise), ["rule"], "rule", alpha=0.05, min_delta=0.0).outcome == "inconclusive"


def test_infra_errors_above_two_percent_invalidate_the_run() -> None:
    pairs = [(False, True)] * 50 + [(True, True)] * 50
    assert decide(results(pairs, errors=1), ["rule"], "rule", alpha=0.05, min_delta=0).outcome == "accept"
    assert decide(results(pairs, errors=10), ["rule"], "rule", alpha=0.05, min_delta=0).outcome == "invalid"
