"""Diagnostics and how much each weighs for the target provider.

Every problem the data stage finds is a `Diagnostic` with a stable code. Its severity comes from the
code's default here, or from the target's training format (what OpenAI accepts, Bedrock may reject),
and finally from the user's `data.severity` overrides. An example with a contract problem is never
written; the severity only decides whether that stops the run (error) or skips the example (warning).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.errors import DataProblem
from providers.formats import FormatProblem, Severity, TrainingFormat, all_codes

# code -> default severity; `True` marks contract codes: the example cannot be used as it is
CODES: dict[str, tuple[Severity, bool]] = {
    "empty_file": (Severity.ERROR, True),
    "bom": (Severity.ERROR, False),
    "invalid_utf8": (Severity.ERROR, True),
    "invalid_json": (Severity.ERROR, True),
    "truncated_last_line": (Severity.ERROR, True),
    "not_object": (Severity.ERROR, True),
    "missing_messages": (Severity.ERROR, True),
    "message_not_object": (Severity.ERROR, True),
    "unknown_role": (Severity.ERROR, True),
    "system_not_first": (Severity.ERROR, True),
    "no_final_assistant": (Severity.ERROR, True),
    "empty_content": (Severity.ERROR, True),
    "non_string_content": (Severity.ERROR, True),
    "content_parts": (Severity.ERROR, True),
    "bad_weight": (Severity.ERROR, True),
    "bad_tool_call": (Severity.ERROR, True),
    "tool_unmatched": (Severity.ERROR, True),
    "bad_metadata": (Severity.ERROR, True),
    "too_long": (Severity.ERROR, True),
    "pii_rejected": (Severity.ERROR, True),
    "unknown_key": (Severity.ERROR, False),
    "unknown_message_key": (Severity.ERROR, False),
    "blank_line": (Severity.WARNING, False),
    "pii_found": (Severity.WARNING, False),
    "too_few_examples": (Severity.ERROR, False),
    "too_many_eval_examples": (Severity.ERROR, False),
    "volume": (Severity.INFO, False),
    "recipe": (Severity.WARNING, False),
    "context_unknown": (Severity.WARNING, False),
    "tokenizer_estimate": (Severity.WARNING, False),
    "duplicates": (Severity.INFO, False),
    "compressed": (Severity.INFO, False),
    "leakage": (Severity.WARNING, False),
}


def known_codes() -> frozenset[str]:
    return frozenset(CODES) | all_codes()


@dataclass(frozen=True)
class Diagnostic:
    """One finding: a line number (None for the whole dataset), a stable code, a severity and why."""

    line: int | None
    code: str
    severity: Severity
    message: str
    file: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The CLI's JSON shape; `file` appears only for a file other than the input (the eval set)."""
        shape = {"line": self.line, "code": self.code, "severity": str(self.severity),
                 "message": self.message}
        if self.file is not None:
            shape["file"] = self.file
        return shape


class Diagnostics:
    """Collects diagnostics under the target's rules: counts every one, keeps the first `keep` of each
    severity for the report, and hands each to `sink` as it is found (the CLI streams them)."""

    def __init__(self, target_format: TrainingFormat, overrides: Mapping[str, str] | None = None, *,
                 keep: int = 1000, sink: Callable[[Diagnostic], None] | None = None) -> None:
        self.format = target_format
        self.overrides = dict(overrides or {})
        self.keep, self.sink = keep, sink
        self.file: str | None = None
        self.kept: list[Diagnostic] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self._kept_by: Counter[Severity] = Counter()

    def for_file(self, path: str) -> Diagnostics:
        """The same collection, with findings marked as coming from another file (the eval set)."""
        other = Diagnostics(self.format, self.overrides, keep=self.keep, sink=self.sink)
        other.kept, other.counts, other._kept_by, other.file = self.kept, self.counts, self._kept_by, path
        return other

    def add(self, line: int | None, code: str, message: str,
            severity: Severity | None = None) -> Diagnostic | None:
        """Record a finding; returns it, or None when the user turned the code off."""
        chosen = self.overrides.get(code)
        if chosen == "off":
            return None
        resolved = Severity(chosen) if chosen else (severity or CODES[code][0])
        diagnostic = Diagnostic(line, code, resolved, message, self.file)
        self.counts[(code, str(resolved))] += 1
        if self._kept_by[resolved] < self.keep:
            self._kept_by[resolved] += 1
            self.kept.append(diagnostic)
        if self.sink is not None:
            self.sink(diagnostic)
        return diagnostic

    def add_format(self, line: int, problems: Iterable[FormatProblem]) -> bool:
        """Record the target's problems with an example; True when any of them is an error."""
        failed = False
        for problem in problems:
            recorded = self.add(line, problem.code, problem.message, problem.severity)
            failed = failed or (recorded is not None and recorded.severity == Severity.ERROR)
        return failed

    def count(self, severity: Severity) -> int:
        return sum(n for (_, level), n in self.counts.items() if level == severity)

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    def problems(self, path: str) -> list[DataProblem]:
        """The kept errors as DataProblems for DataError (dataset-level ones on line 0)."""
        return [DataProblem(d.file or path, d.line or 0, d.code, d.message)
                for d in self.kept if d.severity == Severity.ERROR]

    def summary(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (code, level), n in sorted(self.counts.items()):
            table.setdefault(code, {})[level] = n
        return table
