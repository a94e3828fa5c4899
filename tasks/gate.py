"""The first promotion gate: did the candidate beat the base on the primary grader, paired per item?

Binary pass/fail per item and model; the comparison is McNemar's exact test on the discordant pairs
(b = candidate passed where the base failed, c = the reverse) with a Wald interval for the difference.
Rules, first match wins (version `gate-v0`):
    invalid       more than 2 % of answers were infra errors, or no item could be scored
    reject        the candidate is worse on the primary grader (delta < 0, p < alpha)
    accept        the candidate is better (delta > 0, p < alpha) and the gain is at least min_delta
    inconclusive  anything else: not significant, or a gain below min_delta
Other graders are reported beside it and do not decide.
"""

from __future__ import annotations

import math
from typing import Literal

from prefect import task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, ConfigDict
from scipy.stats import binomtest

from tasks.evaluation.runner import ItemResult
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.rundir import RunDir, write_json

RULES_VERSION = "gate-v0"
MAX_INFRA_ERROR_RATE = 0.02


class Comparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    grader: str
    n: int
    base_passed: int
    candidate_passed: int
    improved: int
    regressed: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float

    def describe(self) -> str:
        def rate(k: int) -> str:
            return f"{k}/{self.n} ({k / self.n:.1%})" if self.n else "0/0"
        return (f"{self.grader}: base {rate(self.base_passed)} -> candidate {rate(self.candidate_passed)}, "
                f"delta {self.delta * 100:+.1f} pp [95% CI {self.ci_low * 100:+.1f}, {self.ci_high * 100:+.1f}], "
                f"McNemar exact p={self.p_value:.2g} ({self.improved} improved, {self.regressed} regressed)")


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Literal["accept", "reject", "inconclusive", "invalid"]
    rules_version: str = RULES_VERSION
    primary: str
    reason: str
    infra_error_rate: float
    comparisons: list[Comparison]


def compare(results: list[ItemResult], grader: str) -> Comparison:
    """Pair base and candidate results by item; items missing a grade on either side are left out."""
    passed: dict[str, dict[str, bool]] = {}
    for result in results:
        if result.error is None and grader in result.grades:
            passed.setdefault(result.item, {})[result.role] = result.grades[grader].passed
    pairs = [(p["base"], p["candidate"]) for p in passed.values() if len(p) == 2]
    n = len(pairs)
    improved = sum(1 for base, cand in pairs if cand and not base)
    regressed = sum(1 for base, cand in pairs if base and not cand)
    discordant = improved + regressed
    delta = (improved - regressed) / n if n else 0.0
    se = math.sqrt(max(discordant - (improved - regressed) ** 2 / n, 0.0)) / n if n else 0.0
    p_value = binomtest(improved, discordant, 0.5).pvalue if discordant else 1.0
    return Comparison(grader=grader, n=n, base_passed=sum(b for b, _ in pairs),
                      candidate_passed=sum(c for _, c in pairs), improved=improved, regressed=regressed,
                      delta=delta, ci_low=max(delta - 1.96 * se, -1.0), ci_high=min(delta + 1.96 * se, 1.0),
                      p_value=float(p_value))


def decide(results: list[ItemResult], graders: list[str], primary: str, *, alpha: float, min_delta: float
           ) -> Decision:
    comparisons = [compare(results, grader) for grader in graders]
    main = next(c for c in comparisons if c.grader == primary)
    error_rate = sum(r.error is not None for r in results) / len(results) if results else 1.0
    if error_rate > MAX_INFRA_ERROR_RATE or main.n == 0:
        outcome, why = "invalid", f"{error_rate:.1%} of answers were infra errors (limit {MAX_INFRA_ERROR_RATE:.0%})"
    elif main.delta < 0 and main.p_value < alpha:
        outcome, why = "reject", f"the candidate is worse (p < {alpha:g})"
    elif main.delta > 0 and main.p_value < alpha and main.delta >= min_delta:
        outcome, why = "accept", f"the candidate is better (p < {alpha:g})"
    elif main.delta > 0 and main.p_value < alpha:
        outcome, why = "inconclusive", f"better, but by less than gate.min_delta={min_delta:g}"
    else:
        outcome, why = "inconclusive", f"no significant difference at alpha={alpha:g}"
    return Decision(outcome=outcome, primary=primary, reason=f"{why}; {main.describe()}",
                    infra_error_rate=error_rate, comparisons=comparisons)


@task(name="decide", **LOCAL_WORK)
def decide_promotion(results: list[ItemResult], graders: list[str], primary: str, run: RunDir, *,
                     alpha: float, min_delta: float) -> Decision:
    decision = decide(results, graders, primary, alpha=alpha, min_delta=min_delta)
    write_json(run.root / "decision.json", decision.model_dump(mode="json"))
    run.record("decision", {"outcome": decision.outcome, "rules_version": decision.rules_version,
                            "primary": primary, "file": "decision.json"})
    create_table_artifact(table=[c.model_dump() for c in decision.comparisons], key="eval-comparison",
                          description=f"{decision.outcome.upper()} ({RULES_VERSION}): {decision.reason}")
    milestone("decide", "decision: %s", decision.outcome.upper())
    return decision
