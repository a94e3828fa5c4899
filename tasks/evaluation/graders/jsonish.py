"""JSON graders: json_parse (strict or fenced), json_schema (Draft 2020-12) and field_accuracy."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from jsonschema import Draft202012Validator

from providers.base import Completion
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.items import EvalItem

# an answer wrapped whole in one markdown code fence (graders read the body inside)
FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*)\n```$", re.DOTALL)
_MAX_ERRORS = 5
_MAX_MESSAGE = 120


def parse_json(text: str, *, fenced: bool) -> tuple[Any, str | None]:
    """(value, None) when the text is JSON; (None, why) otherwise. `fenced` strips one ``` fence first."""
    body = text.strip()
    if fenced:
        found = FENCE.match(body)
        body = found.group(1).strip() if found else body
    try:
        return json.loads(body), None
    except ValueError as exc:
        return None, str(exc)[:_MAX_MESSAGE]


@dataclass(frozen=True)
class JsonParse:
    """Strict: `json.loads(output.strip())` succeeds. Fenced: one surrounding ```json fence may wrap it."""

    mode: Literal["strict", "fenced"] = "strict"
    name: str = field(default="json_parse", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        _, error = parse_json(answer.text, fenced=self.mode == "fenced")
        return scored(self, error is None, mode=self.mode, **({"error": error} if error else {}))


@dataclass(frozen=True)
class JsonSchema:
    """The answer parses (strict, or `fenced`) and validates against the schema (`schema`, else the item's
    `metadata.schema`); `details.errors` lists the JSON paths of the first violations."""

    schema: dict[str, Any] | None = None
    fenced: bool = False
    name: str = field(default="json_schema", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        schema = self.schema if self.schema is not None else item.metadata.get("schema")
        if not isinstance(schema, dict):
            return GraderResult.failed(self, f"item {item.key} has no metadata.schema and the grader "
                                             "no schema")
        value, error = parse_json(answer.text, fenced=self.fenced)
        if error is not None:
            return scored(self, False, parsed=False, error=error)
        violations = sorted(Draft202012Validator(schema).iter_errors(value),
                            key=lambda e: list(e.absolute_path))
        paths = [e.json_path for e in violations[:_MAX_ERRORS]]
        return scored(self, not violations, parsed=True, errors=paths, error_count=len(violations))


def _leaves(value: Any, path: str = "$") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_leaves(child, f"{path}.{key}"))
        return out
    return {path: value}


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip().casefold()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(f"{value:.9g}")
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _multiset(values: list[Any]) -> list[str]:
    return sorted(json.dumps(_norm(v), sort_keys=True) for v in values)


def _equal(got: Any, want: Any, *, ordered: bool) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(want, list) and isinstance(got, list):
        if ordered:
            return len(got) == len(want) and all(_equal(g, w, ordered=True)
                                                 for g, w in zip(got, want, strict=True))
        return _multiset(got) == _multiset(want)
    return _norm(got) == _norm(want)


@dataclass(frozen=True)
class FieldAccuracy:
    """Share of the reference's leaf fields whose value the answer reproduces.

    Strings compare after NFKC + strip + casefold, numbers within a relative tolerance of 1e-6, lists as
    order-insensitive multisets unless `ordered_lists`. A missing field is wrong; extra fields are ignored.
    passed = score >= `pass_at` (default: every field right).
    """

    ordered_lists: bool = False
    fenced: bool = False
    pass_at: float = 1.0
    name: str = field(default="field_accuracy", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "score"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        reference, problem = parse_json(item.reference or "", fenced=False)
        if problem is not None or not isinstance(reference, dict):
            return GraderResult.failed(self, f"item {item.key}: the reference is not a JSON object")
        want = _leaves(reference)
        value, error = parse_json(answer.text, fenced=self.fenced)
        got = _leaves(value) if isinstance(value, dict) else {}
        wrong = [path for path, expected in want.items()
                 if path not in got or not _equal(got[path], expected, ordered=self.ordered_lists)]
        score = 1 - len(wrong) / len(want) if want else 1.0
        return scored(self, score >= self.pass_at, score, fields=len(want), wrong=wrong[:_MAX_ERRORS],
                      **({"error": error} if error else {}))
