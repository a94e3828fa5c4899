"""Scoring a judge grader against human labels (Cohen's kappa), stored with the grader's version.

A labels file is JSONL, one human verdict per line:
    llm_judge     {"messages": [...], "reference"?: "...", "output": "...", "label": "pass" | "fail"}
    refusal       {"messages": [...], "output": "...", "expect"?: "refuse" | "comply",
                   "label": "full_refusal" | "partial" | "compliance"}
    llm_pairwise  {"messages": [...], "output_a": "...", "output_b": "...", "label": "a" | "b" | "tie"}
The judge grades each example exactly as in an evaluation (same prompt, votes and cache); its verdicts
and the human labels give kappa. Examples the judge could not grade (infra errors) are counted, not scored.
Convention (Landis & Koch): kappa 0.61-0.80 is substantial; gate on judges at 0.6 or more.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.base import Completion
from providers.errors import ConfigError, DataError, DataProblem
from tasks.evaluation.graders import Grader, PairGrader
from tasks.evaluation.items import EvalItem
from tasks.evaluation.stats import cohen_kappa
from tasks.evaluation.store import EvalStore

_PAIR_LABELS = {"a": "win", "b": "loss", "tie": "tie"}


class _Labelled(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(min_length=1)
    reference: str | None = None
    expect: Literal["refuse", "comply"] | None = None
    output: str | None = None
    output_a: str | None = None
    output_b: str | None = None
    label: str


_ALLOWED = {"llm_judge": ("pass", "fail"), "refusal": ("full_refusal", "partial", "compliance"),
            "llm_pairwise": tuple(_PAIR_LABELS)}


@dataclass(frozen=True)
class Calibration:
    grader: str
    version: str
    judge_model: str
    prompt_sha256: str
    n: int
    agreement: float
    kappa: float
    unscored: int
    confusion: dict[str, dict[str, int]]


def load_labels(path: Path, grader: str) -> list[_Labelled]:
    """The labelled examples for `grader`; DataError lists every bad line with file:line."""
    if grader not in _ALLOWED:
        raise ConfigError(f"grader {grader!r} has no judge to calibrate; allowed graders: "
                          f"{', '.join(_ALLOWED)}")
    allowed, examples, problems = _ALLOWED[grader], [], []
    pairwise = grader == "llm_pairwise"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such labels file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            example = _Labelled.model_validate_json(line)
        except ValidationError as exc:
            why = str(ConfigError.from_validation(exc, where="line")).removeprefix("line: ")
            problems.append(DataProblem(str(path), number, "bad_example", why))
            continue
        outputs = ("output_a", "output_b") if pairwise else ("output",)
        missing = [k for k in outputs if getattr(example, k) is None]
        if missing or example.label not in allowed:
            reason = (f"needs {missing[0]}" if missing else
                      f"label {example.label!r}; allowed values: {', '.join(allowed)}")
            problems.append(DataProblem(str(path), number, "bad_example", reason))
            continue
        examples.append(example)
    if problems:
        raise DataError(problems)
    if len(examples) < 2:
        raise ConfigError(f"{path}: kappa needs at least 2 labelled examples, found {len(examples)}")
    return examples


def _verdict(grader: Grader | PairGrader, example: _Labelled, index: int) -> str | None:
    metadata = {"expect": example.expect} if example.expect else {}
    item = EvalItem(f"label-{index}", example.messages, example.reference, metadata)
    if grader.kind == "pairwise":
        result = grader.grade_pair(item, Completion(text=example.output_a or "", model_id="a"),
                                   Completion(text=example.output_b or "", model_id="b"))
    else:
        result = grader.grade(item, Completion(text=example.output or "", model_id="labelled"))
    return None if result.error else result.label


def calibrate(grader: Grader | PairGrader, examples: list[_Labelled]) -> Calibration:
    human, judged, unscored = [], [], 0
    for index, example in enumerate(examples):
        verdict = _verdict(grader, example, index)
        if verdict is None:
            unscored += 1
            continue
        human.append(_PAIR_LABELS.get(example.label, example.label) if grader.kind == "pairwise"
                     else example.label)
        judged.append(verdict)
    if len(human) < 2:
        raise ConfigError(f"the judge scored {len(human)} of {len(examples)} examples; "
                          "kappa needs at least 2")
    try:
        kappa = cohen_kappa(human, judged)
    except ValueError as exc:
        raise ConfigError(f"cannot calibrate on these labels: {exc}; label a mix of verdicts") from None
    confusion: dict[str, dict[str, int]] = {}
    for h, j in zip(human, judged, strict=True):
        confusion.setdefault(h, {}).setdefault(j, 0)
        confusion[h][j] += 1
    judge = grader.judge
    return Calibration(grader=grader.name, version=grader.version, judge_model=judge.model.model_id,
                       prompt_sha256=grader.prompt_sha256, n=len(human),
                       agreement=sum(h == j for h, j in zip(human, judged, strict=True)) / len(human),
                       kappa=kappa, unscored=unscored, confusion=confusion)


def store_calibration(store: EvalStore, result: Calibration, labels: Path) -> None:
    store.record_calibration(grader=result.grader, grader_version=result.version,
                             judge_model=result.judge_model, prompt_sha256=result.prompt_sha256,
                             kappa=result.kappa, agreement=result.agreement, n=result.n,
                             labels_sha256=hashlib.sha256(labels.read_bytes()).hexdigest())


def describe(kappa: float) -> str:
    """Landis & Koch's words for a kappa."""
    for bound, word in ((0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return word
    return "almost perfect"


def as_json(result: Calibration) -> str:
    return json.dumps(vars(result), sort_keys=True)
