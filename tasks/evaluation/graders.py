"""Deterministic graders: each turns one model output (and an optional reference) into a GraderResult.

Semantics follow reference/eval_ab.md §7.1. A grader is pure and never raises on model output: a malformed
or empty answer is a model error and scores 0. Configuration mistakes (unknown grader, bad parameter) raise
ConfigError from `build_grader`, before any item is graded. Bump a grader's `version` whenever its verdict
on some output could change: results recorded under different versions are not comparable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Protocol

from providers.errors import ConfigError

__all__ = [
    "GRADER_NAMES",
    "BulletRule",
    "ExactMatch",
    "Grader",
    "GraderResult",
    "build_grader",
    "verb_lexicon",
]


@dataclass(frozen=True)
class GraderResult:
    """One grader's verdict on one output.

    `score` is in [0, 1]; `details` is JSON-serialisable, explains the verdict, and never holds the full
    output text.
    """

    grader: str
    version: str
    score: float
    passed: bool
    details: dict


class Grader(Protocol):
    name: str
    version: str

    def grade(self, output: str, reference: str | None) -> GraderResult:
        """Grade one output. Deterministic; never raises on any output text."""
        ...


@dataclass(frozen=True)
class ExactMatch:
    """`norm(output) == norm(reference)`; norm = NFKC, strip, collapse whitespace runs, optional casefold."""

    casefold: bool = True
    name: str = field(default="exact_match", init=False)
    version: str = field(default="1", init=False)

    def grade(self, output: str, reference: str | None) -> GraderResult:
        if reference is None:
            return GraderResult(self.name, self.version, 0.0, False, {"reason": "no reference"})
        got, want = self._normalise(output), self._normalise(reference)
        if got == want:
            return GraderResult(self.name, self.version, 1.0, True, {"casefold": self.casefold})
        details = {
            "casefold": self.casefold,
            "first_difference": _first_difference(got, want),
            "output_chars": len(got),
            "reference_chars": len(want),
        }
        return GraderResult(self.name, self.version, 0.0, False, details)

    def _normalise(self, text: str) -> str:
        text = " ".join(unicodedata.normalize("NFKC", text).split())
        return text.casefold() if self.casefold else text


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


_BULLET = re.compile(r"^\s*[-*•]\s+(\S.*)$")
_MAX_REPORTED = 5
_MAX_TOKEN_CHARS = 40


@dataclass(frozen=True)
class BulletRule:
    """A structure rule: exactly `count` bullets (`-`, `*` or `•` markers) and no other non-empty lines.

    Sub-checks, all evaluated: `count`, `only_bullets` (`allow_heading` permits one non-bullet line before
    the first bullet) and, when `verb_first`, `verbs` (each bullet's first word, stripped of punctuation and
    lowercased, is in the verb lexicon). `score` = passed checks / checks; `passed` = all pass. An output
    without any bullet fails every check, so an empty answer scores 0.
    """

    count: int
    verb_first: bool = False
    allow_heading: bool = False
    name: str = "bullets"
    version: str = field(default="1", init=False)

    def grade(self, output: str, reference: str | None) -> GraderResult:
        lines = [line for line in output.splitlines() if line.strip()]
        matches = [_BULLET.match(line) for line in lines]
        items = [m.group(1) for m in matches if m]
        others = [i for i, m in enumerate(matches) if m is None]
        checks = {
            "count": len(items) == self.count,
            "only_bullets": bool(items) and (not others or (self.allow_heading and others == [0])),
        }
        non_verbs: list[str] = []
        if self.verb_first:
            non_verbs = [first for first in (item.split()[0] for item in items) if not _is_verb(first)]
            checks["verbs"] = bool(items) and not non_verbs
        passed = sum(checks.values())
        details = {
            "bullets": len(items),
            "checks": checks,
            "non_verbs": [word[:_MAX_TOKEN_CHARS] for word in non_verbs[:_MAX_REPORTED]],
        }
        return GraderResult(self.name, self.version, passed / len(checks), passed == len(checks), details)


def _is_verb(token: str) -> bool:
    word = unicodedata.normalize("NFKC", token)
    # Markdown emphasis and trailing colons are common around the verb ("**Book**", "Book:"); they do not
    # change which word leads the bullet.
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    return word[start:end].lower() in verb_lexicon()


@cache
def verb_lexicon() -> frozenset[str]:
    """The imperative verbs a bullet may start with, from `verbs.txt` shipped beside this module."""
    text = resources.files(__package__).joinpath("verbs.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


# name -> (constructor, fixed arguments, {parameter: type}, required parameters)
_CATALOGUE: dict[str, tuple[type, dict, dict[str, type], frozenset[str]]] = {
    "exact_match": (ExactMatch, {}, {"casefold": bool}, frozenset()),
    "bullets": (
        BulletRule,
        {"name": "bullets"},
        {"count": int, "verb_first": bool, "allow_heading": bool},
        frozenset({"count"}),
    ),
    "five_verb_bullets": (
        BulletRule,
        {"name": "five_verb_bullets", "count": 5, "verb_first": True},
        {"allow_heading": bool},
        frozenset(),
    ),
}

GRADER_NAMES: tuple[str, ...] = tuple(_CATALOGUE)


def build_grader(name: str, **params: object) -> Grader:
    """The grader called `name`, configured by `params`.

    Raises ConfigError naming the grader and, for an unknown name, the allowed names; for a bad parameter,
    the parameter, what is wrong, and the allowed parameters.
    """
    if name not in _CATALOGUE:
        raise ConfigError(f"grader {name!r} is unknown; allowed graders: {', '.join(GRADER_NAMES)}")
    constructor, fixed, types, required = _CATALOGUE[name]
    for key, value in params.items():
        _check_param(name, key, value, types)
    missing = sorted(required - params.keys())
    if missing:
        raise ConfigError(f"grader {name!r}: required parameter {missing[0]!r} is missing")
    if "count" in params and params["count"] < 1:
        raise ConfigError(f"grader {name!r}: parameter 'count' must be at least 1, got {params['count']!r}")
    return constructor(**fixed, **params)


def _check_param(grader: str, key: str, value: object, types: dict[str, type]) -> None:
    if key not in types:
        allowed = ", ".join(types) or "none"
        raise ConfigError(f"grader {grader!r}: unknown parameter {key!r}; allowed parameters: {allowed}")
    expected = types[key]
    # bool is a subclass of int: `count: true` in YAML must not pass as 1
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        got = f"{type(value).__name__} {value!r}"
        raise ConfigError(f"grader {grader!r}: parameter {key!r} must be {expected.__name__}, got {got}")
