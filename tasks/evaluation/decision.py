"""What the promotion gate decided and why: the value every later step reads (report, serving, registry)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tasks.evaluation.compare import Comparison, Telling
from tasks.evaluation.rules import Thresholds
from tasks.evaluation.stops import NeverStops


class RuleCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: str
    matched: bool
    why: str


ACCEPTED = ("accept", "accept_weak")


class Decision(BaseModel):
    """What the gate decided and why. `primary` names the deciding metric as suite/grader."""

    model_config = ConfigDict(frozen=True)

    outcome: str
    rules_version: str
    primary: str
    reason: str
    action: str
    infra_error_rate: float
    thresholds: Thresholds
    comparisons: list[Comparison]
    checks: list[RuleCheck]
    notes: list[str]
    telling: list[Telling]
    never_stops: NeverStops | None = None  # answers cut at max_tokens, base and candidate (None: before v2)

    @property
    def accepted(self) -> bool:
        """Whether the candidate may go on (to serving for good, the registry, the canary)."""
        return self.outcome in ACCEPTED
