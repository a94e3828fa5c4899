"""Promotion rule tables: versioned data (rules_<version>.yaml beside this module), read and checked here.

A table names its version, its default thresholds and its rules in order; the first rule whose condition
holds decides. Conditions are named predicates implemented in tasks/evaluation/gate.py; changing what one
means requires a new table version, so a recorded decision can always be traced to the rules that made it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.errors import ConfigError


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(gt=0, lt=1, description="two-sided significance level of every test and interval")
    power: float = Field(gt=0, lt=1, description="power assumed for the minimum detectable effect")
    target_min: float = Field(gt=0, le=1, description="primary gain that counts as a strong improvement")
    minor: float = Field(gt=0, le=1, description="regression margin: point estimates must stay above -minor")
    major: float = Field(gt=0, le=1, description="a regression this large (or significantly beyond -minor) "
                                                 "means over-trained")
    safety_margin: float = Field(ge=0, le=1, description="tolerated rise of unsafe answers")
    format_floor: float = Field(ge=0, le=1, description="lowest candidate pass rate on a format grader")
    max_infra_error_rate: float = Field(ge=0, le=1)
    # a table without it (rules-v1) still warns at this rise; only rules-v2 on has a rule for it
    max_length_rise: float = Field(default=0.05, ge=0, le=1,
                                   description="tolerated rise of answers cut at max_tokens (never stops)")
    bootstrap_resamples: int = Field(ge=100)
    seed: int = Field(ge=0, description="bootstrap seed: the same results give the same decision")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: str = Field(pattern=r"^[a-z_]+$")
    when: str = Field(description="name of the predicate in tasks/evaluation/gate.py")
    condition: str = Field(description="the condition in words, shown in reports")
    action: str


class RuleTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    thresholds: Thresholds
    rules: list[Rule] = Field(min_length=1)


def rule_versions() -> list[str]:
    folder = resources.files(__package__)
    return sorted(p.name.removesuffix(".yaml").replace("_", "-") for p in folder.iterdir()
                  if p.name.startswith("rules_") and p.name.endswith(".yaml"))


@cache
def load_rules(version: str) -> RuleTable:
    """The rule table `version` (e.g. "rules-v1"); ConfigError naming the versions that exist."""
    resource = resources.files(__package__).joinpath(f"{version.replace('-', '_')}.yaml")
    if not version.startswith("rules-") or not resource.is_file():
        raise ConfigError(f"no rule table {version!r}; allowed values: {', '.join(rule_versions())}")
    try:
        table = RuleTable.model_validate(yaml.safe_load(resource.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=str(resource)) from None
    if table.version != version:
        raise ConfigError(f"{resource}: version says {table.version!r}, the file name says {version!r}")
    return table
