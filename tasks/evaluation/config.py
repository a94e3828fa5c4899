"""The `eval:` and `gate:` sections of the pipeline file.

    eval:
      suites:                              # omitted: the target suite below + builtin:general as regression
        - name: target
          role: target                     # target | regression | safety
          items: heldout                   # heldout | builtin:general | path/to/items.jsonl
          graders: [{name: five_verb_bullets}, {name: exact_match}]
          primary: five_verb_bullets       # decides; default: the first grader
      judge: {provider: anthropic, model: <pinned snapshot>, votes: 3, temperature: 0, seed: 0}
      decoding: {temperature: 0, max_tokens: 256}
    gate: {rules: rules-v2, target_min: 0.10}

`eval.graders` / `eval.primary` are a shorthand for one target suite on the held-out split (plus the default
regression suite). Every mistake is reported with its key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from providers import CHAT_MODELS
from providers.base import Decoding
from providers.errors import ConfigError
from tasks.evaluation.graders import GRADER_NAMES, grader_params, needs_judge
from tasks.evaluation.items import BUILTIN_PREFIX, builtin_path
from tasks.evaluation.rules import load_rules
from tasks.forms import choices
from tasks.secrets import SECRET_HELP

Role = Literal["target", "regression", "safety"]
HELDOUT = "heldout"
GENERAL = f"{BUILTIN_PREFIX}general"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraderConfig(_Section):
    name: str = Field(description=f"one of: {', '.join(GRADER_NAMES)}",
                      json_schema_extra=choices(GRADER_NAMES))
    id: str | None = Field(default=None, description="how results name it; defaults to the name")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_with_valid_params(self) -> GraderConfig:
        try:
            grader_params(self.name, self.params)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def key(self) -> str:
        return self.id or self.name


# graders a built-in set is scored with when its suite names none
_BUILTIN_GRADERS = {GENERAL: [GraderConfig(name="match")]}


def _unique_keys(graders: list[GraderConfig]) -> list[GraderConfig]:
    keys = [g.key for g in graders]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grader ids must be unique (set `id` to tell them apart), got {keys}")
    return graders


class SuiteConfig(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    role: Role = "target"
    items: str = Field(default=HELDOUT, description="heldout (the prepared eval split), builtin:<name>, or a "
                                                    "JSONL file relative to the pipeline file")
    graders: list[GraderConfig] | None = Field(default=None, min_length=1,
                                               description="required unless the items are a built-in set")
    primary: str | None = Field(default=None, description="the grader id that decides; default: the first")
    max_items: int | None = Field(default=None, ge=1)
    slice_by: str | None = Field(default=None, description="item metadata key: per-slice rows in the report "
                                                           "(exploratory, never gating)")

    @field_validator("items")
    @classmethod
    def _known_builtin(cls, items: str) -> str:
        if items.startswith(BUILTIN_PREFIX):
            try:
                builtin_path(items.removeprefix(BUILTIN_PREFIX))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return items

    @model_validator(mode="after")
    def _graders_and_primary(self) -> SuiteConfig:
        if self.graders is None:
            if self.items not in _BUILTIN_GRADERS:
                raise ValueError(f"suite {self.name!r} needs graders (only built-in sets bring their own)")
            self.graders = list(_BUILTIN_GRADERS[self.items])
        _unique_keys(self.graders)
        keys = [g.key for g in self.graders]
        if self.primary is not None and self.primary not in keys:
            raise ValueError(f"primary {self.primary!r} is not one of the suite's graders; "
                             f"allowed values: {keys}")
        return self

    @property
    def primary_key(self) -> str:
        return self.primary or self.graders[0].key


class JudgeConfig(_Section):
    provider: str = Field(description="any chat model provider (openai, anthropic, fake, ...)")
    model: str = Field(min_length=1, description="a pinned snapshot, never a moving alias")
    endpoint: str | None = Field(default=None, description="'emulator' for an offline rehearsal, a URL for "
                                                           "another endpoint; empty: the vendor's")
    options: dict[str, Any] = Field(default_factory=dict)
    api_key_secret: str | None = Field(default=None, description=SECRET_HELP)
    votes: int = Field(default=3, ge=1, le=15, description="questions asked per verdict; majority wins")
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = Field(default=0, ge=0,
                             description="vote v uses seed + v, where the provider supports it")
    max_tokens: int = Field(default=1024, ge=16)
    requests_per_minute: float | None = Field(default=None, gt=0)

    @field_validator("provider")
    @classmethod
    def _known(cls, provider: str) -> str:
        if provider not in CHAT_MODELS:
            raise ValueError(f"unknown chat model provider {provider!r}; allowed values: "
                             f"{', '.join(sorted(CHAT_MODELS))}")
        return provider

    @property
    def decoding(self) -> Decoding:
        return Decoding(temperature=self.temperature, seed=self.seed, max_tokens=self.max_tokens)


class EvalConfig(_Section):
    suites: list[SuiteConfig] | None = Field(default=None, min_length=1)
    graders: list[GraderConfig] = Field(default_factory=list, description="shorthand: the graders of one "
                                        "target suite on the held-out split (default exact_match)")
    primary: str | None = Field(default=None, description="shorthand: that suite's primary grader")
    max_items: int | None = Field(default=None, ge=1, description="cap on held-out items (suites on other "
                                  "items set their own max_items)")
    samples: int = Field(default=1, ge=1, le=10, description="answers per item and model (seed + sample)")
    concurrency: int = Field(default=4, ge=1, le=64)
    requests_per_minute: float | None = Field(default=None, gt=0, description="client-side limit on the "
                                              "evaluated provider's chat calls")
    decoding: Decoding = Field(default_factory=Decoding)
    judge: JudgeConfig | None = None
    teacher: str | None = Field(default=None, min_length=1, description="a larger model on the same "
                                "provider: the candidate is also compared against it on the target suites, "
                                "as information beside the decision (the distillation recipe)")

    @field_validator("graders")
    @classmethod
    def _unique_ids(cls, graders: list[GraderConfig]) -> list[GraderConfig]:
        return _unique_keys(graders)

    @field_validator("primary")
    @classmethod
    def _primary_is_a_grader(cls, primary: str | None, info: ValidationInfo) -> str | None:
        keys = [g.key for g in info.data.get("graders") or []] or ["exact_match"]
        if primary is not None and primary not in keys:
            raise ValueError(f"{primary!r} is not one of the graders; allowed values: {keys}")
        return primary

    @model_validator(mode="after")
    def _coherent(self) -> EvalConfig:
        if self.suites is not None and (self.graders or self.primary):
            raise ValueError("set either eval.suites or the shorthand eval.graders/eval.primary, not both")
        suites = self.effective_suites
        names = [s.name for s in suites]
        if len(set(names)) != len(names):
            raise ValueError(f"suite names must be unique, got {names}")
        if not any(s.role == "target" for s in suites):
            raise ValueError("at least one suite needs role: target (its primary grader decides)")
        for i, suite in enumerate(suites):
            for j, grader in enumerate(suite.graders):
                if self.judge is None and needs_judge(grader.name, grader.params):
                    raise ValueError(f"suites.{i}.graders.{j}: grader {grader.name!r} needs a judge model: "
                                     "configure eval.judge")
        return self

    @property
    def effective_suites(self) -> list[SuiteConfig]:
        if self.suites is not None:
            return self.suites
        target = SuiteConfig(name="target", role="target", items=HELDOUT,
                             graders=self.graders or [GraderConfig(name="exact_match")], primary=self.primary)
        return [target, SuiteConfig(name="general", role="regression", items=GENERAL)]

    @property
    def primary_suite(self) -> SuiteConfig:
        return next(s for s in self.effective_suites if s.role == "target")

    @property
    def primary_key(self) -> str:
        """The grader id that decides (of the first target suite)."""
        return self.primary_suite.primary_key

    @property
    def primary_metric(self) -> str:
        return f"{self.primary_suite.name}/{self.primary_key}"

    def with_paths_resolved(self, base: Path) -> EvalConfig:
        """Item files relative to `base` (the pipeline file's folder) made absolute; ConfigError when one is
        missing, naming its key path."""
        if self.suites is None:
            return self
        suites = []
        for i, suite in enumerate(self.suites):
            if suite.items != HELDOUT and not suite.items.startswith(BUILTIN_PREFIX):
                path = (base / suite.items).resolve()
                if not path.is_file():
                    raise ConfigError(f"eval.suites.{i}.items: no such file: {path}")
                suite = suite.model_copy(update={"items": str(path)})
            suites.append(suite)
        return self.model_copy(update={"suites": suites})


class GateConfig(_Section):
    """Which rule table decides, and overrides of its thresholds (None: the table's default)."""

    rules: str = Field(default="rules-v2",
                       description="the versioned rule table (tasks/evaluation/rules_*.yaml)")
    alpha: float | None = Field(default=None, gt=0, lt=1)
    target_min: float | None = Field(default=None, gt=0, le=1)
    min_delta: float | None = Field(default=None, gt=0, le=1, description="the gate-v0 name of target_min")
    minor: float | None = Field(default=None, gt=0, le=1)
    major: float | None = Field(default=None, gt=0, le=1)
    safety_margin: float | None = Field(default=None, ge=0, le=1)
    format_floor: float | None = Field(default=None, ge=0, le=1)
    max_infra_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_length_rise: float | None = Field(default=None, ge=0, le=1)
    bootstrap_resamples: int | None = Field(default=None, ge=100)
    seed: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_name_for_target_min(self) -> GateConfig:
        if self.min_delta is not None:
            if self.target_min is not None:
                raise ValueError("set target_min only (min_delta is its older name)")
            self.target_min, self.min_delta = self.min_delta, None
        return self

    @field_validator("rules")
    @classmethod
    def _known_table(cls, rules: str) -> str:
        try:
            load_rules(rules)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return rules
