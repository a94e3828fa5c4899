"""Graders over the answer text: exact_match, match (reference answers of a known type), length, regex."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from providers.base import Completion
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.items import EvalItem

_MAX_SHOWN = 40


def normalise(text: str, *, casefold: bool = True) -> str:
    """NFKC, whitespace runs collapsed to one space, stripped, optionally casefolded."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.casefold() if casefold else text


def _canonical_json(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict | list):
        return None
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


@dataclass(frozen=True)
class ExactMatch:
    """`norm(output) == norm(reference)`; norm = NFKC, strip, collapse whitespace, optional casefold.

    When both sides are JSON objects or arrays they are compared as canonical JSON (sorted keys).
    """

    casefold: bool = True
    json: bool = True
    name: str = field(default="exact_match", init=False)
    version: str = field(default="2", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        if item.reference is None:
            return scored(self, False, reason="no reference")
        if self.json:
            got, want = _canonical_json(answer.text), _canonical_json(item.reference)
            if got is not None and want is not None:
                return scored(self, got == want, compared="json")
        got = normalise(answer.text, casefold=self.casefold)
        want = normalise(item.reference, casefold=self.casefold)
        if got == want:
            return scored(self, True, compared="text")
        return scored(self, False, compared="text", first_difference=_first_difference(got, want),
                      output_chars=len(got), reference_chars=len(want))


_NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_CHOICE = re.compile(r"^[\s*_(\[\"']*([A-Za-z])(?:[\s.):\]*_\"',]|$)")
_EDGE_PUNCTUATION = "\"'`*_.,;:!?()[]{} "
AnswerType = Literal["number", "choice", "text"]


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("−", "-").replace("+", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class Match:
    """Does the answer give the reference answer? How to read the answer depends on its type:

    number: the last number in the answer (thousands separators allowed) equals the reference within a
            relative tolerance of 1e-6;
    choice: the answer starts with the option letter ("B", "B.", "(B)", "**B**", "B) Paris"),
            case-insensitive;
    text:   the normalised answer, stripped of surrounding quotes and punctuation, equals the normalised
            reference or one of `metadata.accept`.
    `answer_type: auto` reads the type from the item's `metadata.answer_type` (default text).
    """

    answer_type: Literal["auto", "number", "choice", "text"] = "auto"
    name: str = field(default="match", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        if item.reference is None:
            return scored(self, False, reason="no reference")
        kind = self.answer_type if self.answer_type != "auto" else item.metadata.get("answer_type", "text")
        if kind == "number":
            return self._number(answer.text, item.reference)
        if kind == "choice":
            found = _CHOICE.match(answer.text)
            letter = found.group(1).upper() if found else None
            return scored(self, letter == item.reference.strip().upper(), answer_type=kind, found=letter)
        accepted = [item.reference, *item.metadata.get("accept", [])]
        got = normalise(answer.text).strip(_EDGE_PUNCTUATION)
        return scored(self, any(got == normalise(a).strip(_EDGE_PUNCTUATION) for a in accepted),
                      answer_type="text", output_chars=len(got))

    def _number(self, text: str, reference: str) -> GraderResult:
        want = _number(reference.strip())
        numbers = [_number(m.group(0)) for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text))]
        got = numbers[-1] if numbers else None
        ok = got is not None and want is not None and abs(got - want) <= 1e-6 * max(1.0, abs(want))
        return scored(self, ok, answer_type="number", found=got)


_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Length:
    """The answer's length in `unit` lies within [min, max]; the raw length is always in the details."""

    unit: Literal["words", "chars", "lines", "tokens"] = "words"
    min: int | None = None
    max: int | None = None
    name: str = field(default="length", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        size = {
            "words": lambda: len(_WORD.findall(answer.text)),
            "chars": lambda: len(answer.text.strip()),
            "lines": lambda: sum(1 for line in answer.text.splitlines() if line.strip()),
            "tokens": lambda: answer.completion_tokens,
        }[self.unit]()
        ok = (self.min is None or size >= self.min) and (self.max is None or size <= self.max)
        return scored(self, ok, length=size, unit=self.unit)


_FLAGS = {"ignorecase": re.IGNORECASE, "multiline": re.MULTILINE, "dotall": re.DOTALL}


@dataclass(frozen=True)
class RegexCheck:
    pattern: str
    expect: Literal["present", "absent", "full"] = "present"
    flags: tuple[str, ...] = ()

    def compiled(self) -> re.Pattern[str]:
        value = 0
        for flag in self.flags:
            value |= _FLAGS[flag]
        return re.compile(self.pattern, value)


@dataclass(frozen=True)
class Regex:
    """A rule made of regex sub-checks, all evaluated: `present` (found anywhere), `absent` (found nowhere),
    `full` (the stripped answer matches entirely). score = passed checks / checks; passed = all pass."""

    checks: tuple[RegexCheck, ...]
    name: str = "regex"
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        text = answer.text.strip()
        outcomes = []
        for check in self.checks:
            pattern = check.compiled()
            if check.expect == "full":
                outcomes.append(pattern.fullmatch(text) is not None)
            else:
                outcomes.append((pattern.search(text) is not None) == (check.expect == "present"))
        failed = [c.pattern[:_MAX_SHOWN] for c, ok in zip(self.checks, outcomes, strict=True) if not ok]
        return scored(self, all(outcomes), sum(outcomes) / len(outcomes), failed=failed)
