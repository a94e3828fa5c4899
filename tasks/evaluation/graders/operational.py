"""Operational graders: they measure the call, not the text, so they grade model errors too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from providers.base import Completion
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.items import EvalItem


@dataclass(frozen=True)
class Latency:
    """The call took at most `max_ms` (as measured when the answer was first obtained; cached answers keep
    their original latency)."""

    max_ms: float
    name: str = field(default="latency", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = True

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        return scored(self, answer.latency_ms <= self.max_ms, latency_ms=round(answer.latency_ms, 1))


@dataclass(frozen=True)
class Cost:
    """The call cost at most `max_usd`: prompt and completion tokens at the given prices per 1M tokens.
    Without `max_usd` every answer passes and the cost is only reported."""

    input_usd_per_1m: float
    output_usd_per_1m: float
    max_usd: float | None = None
    name: str = field(default="cost", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = True

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        usd = (answer.prompt_tokens * self.input_usd_per_1m
               + answer.completion_tokens * self.output_usd_per_1m) / 1e6
        return scored(self, self.max_usd is None or usd <= self.max_usd, usd=usd,
                      prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens)
