"""From per-item results to paired comparisons, one per (suite, grader), plus exploratory slices.

Items pair up by key; an item is left out of a comparison when either model's answer, or its grade, is an
infra error. With several samples per item, an item passes when most of its samples pass and scores their
mean. Binary graders: McNemar exact + Newcombe interval; scores: paired bootstrap; pairwise: sign test.
Non-primary graders of target suites are secondary claims: their p-values are Holm-adjusted together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from tasks.evaluation.evaluate import Evaluation, SuiteSummary
from tasks.evaluation.graders import GraderResult
from tasks.evaluation.rules import Thresholds
from tasks.evaluation.runner import ItemResult
from tasks.evaluation.stats import (
    Paired,
    holm,
    mde_binary,
    mde_continuous,
    paired_binary,
    paired_scores,
    pairwise_wins,
)

_OUTPUT_CHARS = 240
_DETAIL_CHARS = 200


class Comparison(BaseModel):
    """One paired metric: base vs candidate on the items both answered and both graded."""

    model_config = ConfigDict(frozen=True)

    suite: str
    role: str
    grader: str
    grader_name: str
    kind: str
    test: str
    n: int
    base_passed: int
    candidate_passed: int
    improved: int
    regressed: int
    base_value: float
    candidate_value: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    adjusted_p: float | None = None
    mde: float | None = None
    excluded: int = 0
    primary: bool = False
    format: bool = False
    slice: str | None = None

    @property
    def metric(self) -> str:
        return f"{self.suite}/{self.grader}" + (f"[{self.slice}]" if self.slice else "")

    def describe(self) -> str:
        ci = f"[{self.ci_low * 100:+.1f}, {self.ci_high * 100:+.1f}]"
        return (f"{self.metric}: base {self.base_value:.1%} -> candidate {self.candidate_value:.1%}, delta "
                f"{self.delta * 100:+.1f} pp {ci}, p={self.p_value:.2g} (n={self.n})")


class Telling(BaseModel):
    """A discordant item worth reading: where the two models disagree on the suite's primary grader."""

    model_config = ConfigDict(frozen=True)

    suite: str
    item: str
    direction: str
    prompt: str
    base_output: str
    candidate_output: str
    base_grade: str
    candidate_grade: str


@dataclass(frozen=True)
class _Side:
    passed: bool
    score: float
    grade: GraderResult
    result: ItemResult


def _sides(results: list[ItemResult], suite: str, grader: str
           ) -> tuple[dict[str, dict[str, list[_Side]]], int]:
    """item -> role -> graded samples; and how many items had an infra error somewhere."""
    by_item: dict[str, dict[str, list[_Side]]] = defaultdict(lambda: defaultdict(list))
    broken: set[str] = set()
    for r in results:
        if r.suite != suite:
            continue
        grade = r.grades.get(grader)
        if r.error is not None or (grade is not None and grade.error is not None):
            broken.add(r.item)
        elif grade is not None:
            by_item[r.item][r.role].append(_Side(bool(grade.passed), float(grade.score or 0.0), grade, r))
    return {k: v for k, v in by_item.items() if k not in broken}, len(broken)


def _aggregate(samples: list[_Side]) -> tuple[bool, float]:
    return sum(s.passed for s in samples) * 2 > len(samples), sum(s.score for s in samples) / len(samples)


def _paired(kind: str, keys: list[str], sides: dict, thresholds: Thresholds) -> tuple[Paired, int, int]:
    confidence = 1 - thresholds.alpha
    boot = {"confidence": confidence, "resamples": thresholds.bootstrap_resamples, "seed": thresholds.seed}
    if kind == "pairwise":
        scores = [_aggregate(sides[k]["candidate"])[1] for k in keys]
        result = pairwise_wins(scores, **boot)
        return result, result.improved, result.regressed
    base = [_aggregate(sides[k]["base"]) for k in keys]
    cand = [_aggregate(sides[k]["candidate"]) for k in keys]
    counts = sum(p for p, _ in base), sum(p for p, _ in cand)
    if kind == "binary":
        return paired_binary([p for p, _ in cand], [p for p, _ in base], confidence=confidence), *counts
    return paired_scores([s for _, s in cand], [s for _, s in base], **boot), *counts


def compare(evaluation: Evaluation, suite: SuiteSummary, grader: str, thresholds: Thresholds,
            slice_value: str | None = None) -> Comparison:
    info = suite.graders[grader]
    sides, excluded = _sides(evaluation.results, suite.name, grader)
    needed = ("candidate",) if info.kind == "pairwise" else ("base", "candidate")
    in_slice = {f.key for f in suite.items if slice_value is None or f.slice == slice_value}
    keys = sorted(k for k, v in sides.items() if k in in_slice and all(v.get(role) for role in needed))
    paired, base_passed, candidate_passed = _paired(info.kind, keys, sides, thresholds)
    mde = (mde_binary(paired.n, paired.spread, alpha=thresholds.alpha, power=thresholds.power)
           if info.kind == "binary" else
           mde_continuous(paired.n, paired.spread, alpha=thresholds.alpha, power=thresholds.power))
    return Comparison(suite=suite.name, role=suite.role, grader=grader, grader_name=info.name, kind=info.kind,
                      test=paired.test, n=paired.n, base_passed=base_passed,
                      candidate_passed=candidate_passed, improved=paired.improved, regressed=paired.regressed,
                      base_value=paired.base_value, candidate_value=paired.candidate_value,
                      delta=paired.delta, ci_low=paired.ci_low, ci_high=paired.ci_high,
                      p_value=paired.p_value, mde=mde, excluded=excluded, primary=grader == suite.primary,
                      format=info.format, slice=slice_value)


def compare_all(evaluation: Evaluation, thresholds: Thresholds) -> list[Comparison]:
    """Every (suite, grader), then each slice of each sliced suite's primary; secondary target metrics
    get Holm-adjusted p-values."""
    rows = [compare(evaluation, s, g, thresholds) for s in evaluation.suites for g in s.graders]
    first_target = next(s.name for s in evaluation.suites if s.role == "target")
    secondary = [i for i, c in enumerate(rows)
                 if c.role == "target" and not (c.primary and c.suite == first_target)]
    for i, adjusted in zip(secondary, holm([rows[i].p_value for i in secondary]), strict=True):
        rows[i] = rows[i].model_copy(update={"adjusted_p": adjusted})
    for suite in (s for s in evaluation.suites if s.slice_by):
        for value in sorted({f.slice for f in suite.items if f.slice is not None}):
            rows.append(compare(evaluation, suite, suite.primary, thresholds, slice_value=value))
    return rows


def _clip(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _grade_text(side: _Side) -> str:
    grade = side.grade
    details = json.dumps({k: v for k, v in grade.details.items() if k not in ("votes", "unreadable")},
                         sort_keys=True, default=str)
    verdict = "pass" if grade.passed else "fail"
    return _clip(f"{verdict} (score {grade.score:.2f}) {details}" if grade.score is not None else verdict,
                 _DETAIL_CHARS)


def telling_items(evaluation: Evaluation, per_suite: int = 3) -> list[Telling]:
    """Per suite, the items where the candidate lost on the primary grader (the costs), then where it won."""
    found: list[Telling] = []
    for suite in evaluation.suites:
        if suite.graders[suite.primary].kind == "pairwise":
            continue
        sides, _ = _sides(evaluation.results, suite.name, suite.primary)
        prompts = {f.key: f.prompt for f in suite.items}
        losses, wins = [], []
        for key in sorted(k for k, v in sides.items() if v.get("base") and v.get("candidate")):
            base, cand = sides[key]["base"][0], sides[key]["candidate"][0]
            if (base.passed, base.score) != (cand.passed, cand.score):
                worse = (cand.passed, cand.score) < (base.passed, base.score)
                (losses if worse else wins).append(Telling(
                    suite=suite.name, item=key, direction="regressed" if worse else "improved",
                    prompt=_clip(prompts.get(key), 160), base_output=_clip(base.result.output, _OUTPUT_CHARS),
                    candidate_output=_clip(cand.result.output, _OUTPUT_CHARS), base_grade=_grade_text(base),
                    candidate_grade=_grade_text(cand)))
        found += losses[:per_suite] + wins[:max(per_suite - len(losses[:per_suite]), 1)]
    return found
