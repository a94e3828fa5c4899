"""LLM-as-judge graders: a rubric score per answer (`llm_judge`) and candidate-versus-base (`llm_pairwise`).

The judge protocol (reference/eval_ab.md §2): a pinned model snapshot, the configured decoding (temperature
0, a seed where the provider supports one), N votes per question (vote v uses seed + v), a structured JSON
answer that must carry an explicit verdict, and the sha256 of the prompt template recorded with every
result. Pairwise questions are asked in both orders; the candidate wins an item only if it wins both.
A judge that cannot be reached, or whose every vote is unreadable, is an infra error, never a model error.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.base import Completion, Decoding, Message, ModelRef
from providers.errors import ProviderError
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.graders.jsonish import parse_json
from tasks.evaluation.items import EvalItem

_REASONING_CHARS = 300

SYSTEM = ("You are a meticulous, impartial evaluator of AI assistant answers. Judge only what is asked. "
          "Length is not quality: do not prefer an answer for being longer. Reply with one JSON object and "
          "nothing else.")

POINTWISE = """Evaluate the assistant's final answer in this conversation.

<conversation>
{conversation}
</conversation>

<reference_answer>
{reference}
</reference_answer>

<answer>
{answer}
</answer>

<rubric>
{rubric}
</rubric>

First reason briefly about how the answer meets the rubric, then give a score from 1 (worst) to {scale}
(best), and say whether the answer passes the rubric. Reply with JSON only:
{{"reasoning": "<two or three sentences>", "score": <integer 1-{scale}>, "pass": <true or false>}}"""

PAIRWISE = """Compare two answers to the last user turn of this conversation.

<conversation>
{conversation}
</conversation>

<answer_a>
{answer_a}
</answer_a>

<answer_b>
{answer_b}
</answer_b>

<criteria>
{criteria}
</criteria>

Reason briefly, then name the better answer by the criteria, or "tie" when neither is clearly better.
Reply with JSON only: {{"reasoning": "<two or three sentences>", "winner": "A" | "B" | "tie"}}"""


class Completer(Protocol):
    def complete(self, model: ModelRef, messages: list[Message], decoding: Decoding, sample: int = 0
                 ) -> Completion:
        """One completion, cached and rate-limited by the implementation; ProviderError when it fails."""
        ...


@dataclass(frozen=True)
class Judge:
    """A pinned judge model asked each question `votes` times."""

    caller: Completer
    model: ModelRef
    decoding: Decoding = field(default_factory=lambda: Decoding(temperature=0.0, seed=0, max_tokens=1024))
    votes: int = 3

    def ask(self, messages: list[Message], vote: int) -> Completion:
        seed = None if self.decoding.seed is None else self.decoding.seed + vote
        return self.caller.complete(self.model, messages, self.decoding.model_copy(update={"seed": seed}),
                                    sample=vote)


def template_sha256(*parts: object) -> str:
    """sha256 over the prompt templates and every parameter that shapes the prompt."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def conversation_text(messages: list[Message]) -> str:
    def content(message: Message) -> str:
        value = message.get("content")
        return value if isinstance(value, str) else json.dumps(value)
    return "\n".join(f"[{m.get('role')}] {content(m)}" for m in messages)


def read_verdict(text: str) -> Any:
    """The judge's JSON object: strict, fenced, or the outermost {...} of a chattier answer; None if none."""
    value, _ = parse_json(text, fenced=True)
    if isinstance(value, dict):
        return value
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        value, _ = parse_json(text[start:end + 1], fenced=False)
    return value if isinstance(value, dict) else None


class _Vote(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    reasoning: str
    score: int
    passed: bool = Field(alias="pass")


class _PairVote(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reasoning: str
    winner: str


def ask_votes(judge: Judge, messages: list[Message], parse: Any) -> tuple[list[Any], list[str], str | None]:
    """All votes on one question: (parsed votes, reasons some were unreadable, infra error or None)."""
    votes, unreadable = [], []
    for vote in range(judge.votes):
        try:
            completion = judge.ask(messages, vote)
        except ProviderError as exc:
            return [], [], f"judge {judge.model.model_id} unavailable: {exc}"
        try:
            votes.append(parse(completion.text))
        except (ValidationError, ValueError, TypeError) as exc:
            unreadable.append(str(exc).splitlines()[0][:_REASONING_CHARS])
    if not votes:
        return [], unreadable, f"no readable vote from judge {judge.model.model_id}"
    return votes, unreadable, None


@dataclass(frozen=True)
class RubricJudge:
    """Pointwise: the judge scores the answer 1..`scale` against `rubric` and says pass or fail.

    score = (median vote score - 1) / (scale - 1); passed = a strict majority of readable votes pass and
    score >= `pass_score` (both: a judge that omits or contradicts its verdict does not pass an answer).
    """

    judge: Judge
    rubric: str
    scale: int = 5
    pass_score: int = 4
    name: str = field(default="llm_judge", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "score"
    operational: ClassVar[bool] = False

    @property
    def prompt_sha256(self) -> str:
        return template_sha256(SYSTEM, POINTWISE, self.rubric, self.scale, self.pass_score)

    def messages(self, item: EvalItem, answer_text: str) -> list[Message]:
        user = POINTWISE.format(conversation=conversation_text(item.messages),
                                reference=item.reference or "(none)", answer=answer_text, rubric=self.rubric,
                                scale=self.scale)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def _parse(self, text: str) -> _Vote:
        vote = _Vote.model_validate(read_verdict(text))
        if not 1 <= vote.score <= self.scale:
            raise ValueError(f"score {vote.score} outside 1..{self.scale}")
        return vote

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        provenance = {"judge_model": self.judge.model.model_id, "prompt_sha256": self.prompt_sha256}
        votes, unreadable, error = ask_votes(self.judge, self.messages(item, answer.text), self._parse)
        if error:
            return GraderResult.failed(self, error, unreadable=unreadable, **provenance)
        median = statistics.median_low(v.score for v in votes)
        score = (median - 1) / (self.scale - 1)
        passed = sum(v.passed for v in votes) * 2 > len(votes) and median >= self.pass_score
        return scored(self, passed, score, label="pass" if passed else "fail", median=median,
                      votes=[{"score": v.score, "pass": v.passed, "reasoning": v.reasoning[:_REASONING_CHARS]}
                             for v in votes], unreadable=unreadable, **provenance)


@dataclass(frozen=True)
class PairwiseJudge:
    """Candidate versus base, asked in both orders (A = candidate, then A = base), `votes` each.

    Each order's verdict is the strict majority of its readable votes (else a tie). The candidate wins the
    item only if it wins in both orders, loses only if the base wins in both, and ties otherwise:
    score 1 / 0.5 / 0, label win / tie / loss. The length difference is reported (verbosity bias).
    """

    judge: Judge
    criteria: str = "Which answer better follows the user's instructions and is more helpful and correct?"
    name: str = field(default="llm_pairwise", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "pairwise"

    @property
    def prompt_sha256(self) -> str:
        return template_sha256(SYSTEM, PAIRWISE, self.criteria)

    def messages(self, item: EvalItem, answer_a: str, answer_b: str) -> list[Message]:
        user = PAIRWISE.format(conversation=conversation_text(item.messages), answer_a=answer_a,
                               answer_b=answer_b, criteria=self.criteria)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    @staticmethod
    def _parse(text: str) -> str:
        winner = _PairVote.model_validate(read_verdict(text)).winner.strip().upper()
        if winner not in ("A", "B", "TIE"):
            raise ValueError(f"winner {winner!r} is not A, B or tie")
        return winner

    def _order(self, item: EvalItem, first: str, second: str) -> tuple[str | None, list[str], str | None]:
        votes, unreadable, error = ask_votes(self.judge, self.messages(item, first, second), self._parse)
        if error:
            return None, unreadable, error
        top = max(("A", "B"), key=votes.count)
        return (top if votes.count(top) * 2 > len(votes) else "TIE"), unreadable, None

    def grade_pair(self, item: EvalItem, candidate: Completion, base: Completion) -> GraderResult:
        provenance = {"judge_model": self.judge.model.model_id, "prompt_sha256": self.prompt_sha256}
        forward, unread_ab, error = self._order(item, candidate.text, base.text)
        backward, unread_ba, error = ((None, [], error) if error
                                      else self._order(item, base.text, candidate.text))
        if error:
            return GraderResult.failed(self, error, unreadable=unread_ab + unread_ba, **provenance)
        as_candidate = {"A": "candidate", "B": "base", "TIE": "tie"}
        orders = {"AB": as_candidate[forward], "BA": {"A": "base", "B": "candidate", "TIE": "tie"}[backward]}
        outcome = ("win" if set(orders.values()) == {"candidate"} else
                   "loss" if set(orders.values()) == {"base"} else "tie")
        return scored(self, outcome == "win", {"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome], label=outcome,
                      orders=orders, length_difference=len(candidate.text) - len(base.text),
                      unreadable=unread_ab + unread_ba, **provenance)
