"""Structure rules over lines and bullets: `bullets` and `five_verb_bullets` (the quickstart's task)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import ClassVar

from providers.base import Completion
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.items import EvalItem

_BULLET = re.compile(r"^\s*[-*•]\s+(\S.*)$")
_MAX_REPORTED = 5
_MAX_TOKEN_CHARS = 40


@dataclass(frozen=True)
class BulletRule:
    """Exactly `count` bullets (`-`, `*` or `•` markers) and no other non-empty lines.

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
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        lines = [line for line in answer.text.splitlines() if line.strip()]
        matches = [_BULLET.match(line) for line in lines]
        items = [m.group(1) for m in matches if m]
        others = [i for i, m in enumerate(matches) if m is None]
        checks = {
            "count": len(items) == self.count,
            "only_bullets": bool(items) and (not others or (self.allow_heading and others == [0])),
        }
        non_verbs: list[str] = []
        if self.verb_first:
            non_verbs = [first for first in (item.split()[0] for item in items) if not is_verb(first)]
            checks["verbs"] = bool(items) and not non_verbs
        passed = sum(checks.values())
        return scored(self, passed == len(checks), passed / len(checks), bullets=len(items), checks=checks,
                      non_verbs=[word[:_MAX_TOKEN_CHARS] for word in non_verbs[:_MAX_REPORTED]])


def is_verb(token: str) -> bool:
    """Is this bullet's first word (give or take emphasis and punctuation) a verb of the lexicon?"""
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
    """The imperative verbs a bullet may start with, from `verbs.txt` beside the evaluation package."""
    text = resources.files("tasks.evaluation").joinpath("verbs.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())
