"""The graders a pipeline file may name, their parameters (pydantic, strict, unknown keys refused), and
`build_grader`. Configuration mistakes raise ConfigError before any item is graded."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from providers.errors import ConfigError
from tasks.evaluation.graders.base import Grader, PairGrader
from tasks.evaluation.graders.jsonish import FieldAccuracy, JsonParse, JsonSchema
from tasks.evaluation.graders.judge import Judge, PairwiseJudge, RubricJudge
from tasks.evaluation.graders.operational import Cost, Latency
from tasks.evaluation.graders.refusal import Refusal
from tasks.evaluation.graders.structure import BulletRule
from tasks.evaluation.graders.syntax import SyntaxCheck, load_callable
from tasks.evaluation.graders.text import ExactMatch, Length, Match, Regex, RegexCheck

FORMAT_GRADERS = frozenset({"json_parse", "json_schema"})
"""Graders the gate treats as format checks (reject-format: an absolute floor and no significant drop)."""


class _Params(BaseModel):
    # strict: `count: true` or `count: "5"` in YAML is a mistake, not 1 or 5
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class _ExactMatch(_Params):
    casefold: bool = True
    compare_json: bool = Field(default=True, description="compare JSON objects/arrays canonically")


class _Match(_Params):
    answer_type: Literal["auto", "number", "choice", "text"] = "auto"


class _Bullets(_Params):
    count: int = Field(ge=1)
    verb_first: bool = False
    allow_heading: bool = False


class _FiveVerbBullets(_Params):
    allow_heading: bool = False


class _Length(_Params):
    unit: Literal["words", "chars", "lines", "tokens"] = "words"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> _Length:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class _RegexRule(_Params):
    pattern: str = Field(min_length=1)
    expect: Literal["present", "absent", "full"] = "present"
    flags: list[Literal["ignorecase", "multiline", "dotall"]] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class _Regex(_Params):
    rules: list[_RegexRule] = Field(min_length=1)


class _JsonParse(_Params):
    mode: Literal["strict", "fenced"] = "strict"


class _JsonSchema(_Params):
    schema_: dict[str, Any] | None = Field(default=None, alias="schema",
                                           description="else each item's metadata.schema")
    fenced: bool = False

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema (2020-12): {exc.message}") from None
        return schema


class _FieldAccuracy(_Params):
    ordered_lists: bool = False
    fenced: bool = False
    pass_at: float = Field(default=1.0, gt=0, le=1)


class _LlmJudge(_Params):
    rubric: str = Field(min_length=1)
    scale: int = Field(default=5, ge=2, le=10)
    pass_score: int | None = Field(default=None, ge=1, description="default: scale - 1")

    @model_validator(mode="after")
    def _pass_within_scale(self) -> _LlmJudge:
        if self.pass_score is not None and self.pass_score > self.scale:
            raise ValueError(f"pass_score ({self.pass_score}) is above scale ({self.scale})")
        return self


class _LlmPairwise(_Params):
    criteria: str | None = Field(default=None, min_length=1)


class _Refusal(_Params):
    expect: Literal["refuse", "comply"] | None = Field(default=None,
                                                       description="else each item's metadata.expect")
    use_judge: bool = False


class _Latency(_Params):
    max_ms: float = Field(gt=0)


class _Cost(_Params):
    input_usd_per_1m: float = Field(ge=0)
    output_usd_per_1m: float = Field(ge=0)
    max_usd: float | None = Field(default=None, gt=0)


class _SyntaxCheck(_Params):
    command: list[str] | None = Field(default=None, min_length=1, description="run with the answer on stdin; "
                                                                              "exit status 0 passes")
    function: str | None = Field(default=None, description="module:function taking the answer text; truthy "
                                                            "passes, an exception fails")
    timeout_s: float = Field(default=10.0, gt=0)
    fenced: bool = False

    @model_validator(mode="after")
    def _one_parser(self) -> _SyntaxCheck:
        if (self.command is None) == (self.function is None):
            raise ValueError("set exactly one of command, function")
        if self.function is not None:
            load_callable(self.function)
        return self


@dataclass(frozen=True)
class _Entry:
    params: type[_Params]
    build: Callable[[Any, Judge | None], Grader | PairGrader]
    needs_judge: Callable[[Any], bool] = lambda params: False


def _rubric(p: _LlmJudge, judge: Judge | None) -> RubricJudge:
    return RubricJudge(judge, p.rubric, p.scale, p.pass_score if p.pass_score is not None else p.scale - 1)


_CATALOGUE: dict[str, _Entry] = {
    "exact_match": _Entry(_ExactMatch, lambda p, j: ExactMatch(casefold=p.casefold, json=p.compare_json)),
    "match": _Entry(_Match, lambda p, j: Match(p.answer_type)),
    "bullets": _Entry(_Bullets, lambda p, j: BulletRule(p.count, p.verb_first, p.allow_heading)),
    "five_verb_bullets": _Entry(_FiveVerbBullets, lambda p, j: BulletRule(
        5, verb_first=True, allow_heading=p.allow_heading, name="five_verb_bullets")),
    "length": _Entry(_Length, lambda p, j: Length(p.unit, p.min, p.max)),
    "regex": _Entry(_Regex, lambda p, j: Regex(tuple(RegexCheck(r.pattern, r.expect, tuple(r.flags))
                                                     for r in p.rules))),
    "json_parse": _Entry(_JsonParse, lambda p, j: JsonParse(p.mode)),
    "json_schema": _Entry(_JsonSchema, lambda p, j: JsonSchema(p.schema_, p.fenced)),
    "field_accuracy": _Entry(_FieldAccuracy,
                             lambda p, j: FieldAccuracy(p.ordered_lists, p.fenced, p.pass_at)),
    "llm_judge": _Entry(_LlmJudge, _rubric, lambda p: True),
    "llm_pairwise": _Entry(_LlmPairwise, lambda p, j: PairwiseJudge(
        j, **({"criteria": p.criteria} if p.criteria else {})), lambda p: True),
    "refusal": _Entry(_Refusal, lambda p, j: Refusal(p.expect, j if p.use_judge else None),
                      lambda p: p.use_judge),
    "latency": _Entry(_Latency, lambda p, j: Latency(p.max_ms)),
    "syntax_check": _Entry(_SyntaxCheck, lambda p, j: SyntaxCheck(tuple(p.command) if p.command else None,
                                                                  p.function, p.timeout_s, p.fenced)),
    "cost": _Entry(_Cost, lambda p, j: Cost(p.input_usd_per_1m, p.output_usd_per_1m, p.max_usd)),
}

GRADER_NAMES: tuple[str, ...] = tuple(_CATALOGUE)


def _entry(name: str) -> _Entry:
    if name not in _CATALOGUE:
        raise ConfigError(f"grader {name!r} is unknown; allowed graders: {', '.join(GRADER_NAMES)}")
    return _CATALOGUE[name]


def grader_params(name: str, params: dict[str, Any]) -> BaseModel:
    """The validated parameters of grader `name`; ConfigError naming the grader, the parameter and what is
    wrong (for an unknown parameter, the allowed ones)."""
    entry = _entry(name)
    try:
        return entry.params.model_validate(params)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(f.alias or key for key, f in entry.params.model_fields.items()) or "none"
            raise ConfigError(f"grader {name!r}: unknown parameter {first['loc'][0]!r}; "
                              f"allowed parameters: {allowed}") from None
        raise ConfigError.from_validation(exc, where=f"grader {name!r}", prefix="params") from None


def needs_judge(name: str, params: dict[str, Any]) -> bool:
    return _entry(name).needs_judge(grader_params(name, params))


def build_grader(name: str, /, judge: Judge | None = None, **params: Any) -> Grader | PairGrader:
    """The grader called `name`, configured by `params`; judge graders need `judge` (ConfigError if
    absent)."""
    entry = _entry(name)
    checked = grader_params(name, params)
    if entry.needs_judge(checked) and judge is None:
        raise ConfigError(f"grader {name!r} needs a judge model: configure eval.judge")
    return entry.build(checked, judge)
