"""Never stops: the share of answers cut off at max_tokens (finish reason `length`), candidate against base.

A fine-tune that lost its end-of-turn token (a chat template that does not match the one trained on, a
stop token missing from the training data) runs on until the budget ends: the first answer looks right and
then repeats or rambles, and a grader that only looks at the start may not see it. Measured on the pairs
where both models answered the same item (and sample), with McNemar's test and the paired interval: a rise
beyond `max_length_rise` is a warning in every decision, and a rule (`reject_never_stops`) from rules-v2.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tasks.evaluation.evaluate import Evaluation
from tasks.evaluation.stats import paired_binary


class NeverStops(BaseModel):
    """The length-cut share of the base and the candidate on the same items."""

    model_config = ConfigDict(frozen=True)

    n: int
    max_tokens: int
    base_rate: float
    candidate_rate: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float

    def describe(self) -> str:
        return (f"answers cut at max_tokens ({self.max_tokens}): base {self.base_rate:.1%}, candidate "
                f"{self.candidate_rate:.1%} ({self.delta * 100:+.1f} pp [{self.ci_low * 100:+.1f}, "
                f"{self.ci_high * 100:+.1f}], p={self.p_value:.2g}, n={self.n})")


def never_stops(evaluation: Evaluation, *, confidence: float = 0.95) -> NeverStops | None:
    """The paired length-cut rates, or None when no item was answered by both models."""
    cut: dict[tuple[str, str, int], dict[str, bool]] = {}
    for r in evaluation.results:
        if r.error is None:
            cut.setdefault((r.suite, r.item, r.sample), {})[r.role] = r.finish_reason == "length"
    pairs = [(seen["candidate"], seen["base"]) for seen in cut.values() if {"base", "candidate"} <= set(seen)]
    if not pairs:
        return None
    paired = paired_binary([c for c, _ in pairs], [b for _, b in pairs], confidence=confidence)
    return NeverStops(n=paired.n, max_tokens=evaluation.decoding.max_tokens, base_rate=paired.base_value,
                      candidate_rate=paired.candidate_value, delta=paired.delta, ci_low=paired.ci_low,
                      ci_high=paired.ci_high, p_value=paired.p_value)
