"""What every grader returns and promises (reference/eval_ab.md §7.1).

A grader turns one answer (a `Completion`) to one item into a `GraderResult`. It is deterministic for a
given answer (judge graders: for a given judge verdict) and never raises on model output: a malformed or
empty answer is a *model error* and scores 0. An *infra error* (the judge could not be reached or answered
nonsense) is `error` with `score` and `passed` None: excluded from the denominator, counted apart.
Bump a grader's `version` whenever its verdict on some output could change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from providers.base import Completion
from tasks.evaluation.items import EvalItem

Kind = Literal["binary", "score", "pairwise"]
"""How the statistics treat a grader: pass/fail per item (McNemar), a score in [0, 1] (paired bootstrap),
or a candidate-versus-base verdict per item (sign test)."""


@dataclass(frozen=True)
class GraderResult:
    """One grader's verdict on one answer.

    `details` is JSON-serialisable, explains the verdict, and never holds the full output text.
    """

    grader: str
    version: str
    score: float | None
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    error: str | None = None

    @classmethod
    def failed(cls, grader: Grader, error: str, **details: Any) -> GraderResult:
        """An infra error: the grader could not score this answer."""
        return cls(grader.name, grader.version, None, None, dict(details), error=error)


class Grader(Protocol):
    name: str
    version: str
    kind: ClassVar[Kind]
    operational: ClassVar[bool]
    """True for graders that measure the call itself (latency, cost): they grade model errors too."""

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        """Grade one answer. Never raises on any output text."""
        ...


class PairGrader(Protocol):
    """Judges the candidate's answer against the base's answer to the same item (kind "pairwise")."""

    name: str
    version: str
    kind: ClassVar[Kind]

    def grade_pair(self, item: EvalItem, candidate: Completion, base: Completion) -> GraderResult:
        """score 1 = the candidate wins, 0.5 = tie, 0 = the base wins."""
        ...


def model_error(answer: Completion) -> str | None:
    """Why an answer cannot be graded on its merits: empty, or cut off at max_tokens."""
    if answer.finish_reason == "length":
        return "truncated at max_tokens"
    if not answer.text.strip():
        return "empty answer"
    return None


def scored(grader: Grader | PairGrader, passed: bool, score: float | None = None, *, label: str | None = None,
           **details: Any) -> GraderResult:
    return GraderResult(grader.name, grader.version, float(passed) if score is None else score, passed,
                        dict(details), label=label)
