"""Suites ready to run: items loaded, graders built, each grader's provenance known.

A suite names its items (the held-out split, a shipped set, or a JSONL file), its graders, its primary
grader and its role in the gate: `target` (did the fine-tune help), `regression` (did anything else get
worse) or `safety` (is it still safe). Items are checked against their graders before any call is paid
for: a reference grader needs references, `refusal` needs an expectation, `json_schema` a schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.errors import ConfigError
from tasks.evaluation.config import HELDOUT, EvalConfig, Role, SuiteConfig
from tasks.evaluation.graders import FORMAT_GRADERS, Grader, Judge, Kind, PairGrader, build_grader
from tasks.evaluation.items import BUILTIN_PREFIX, EvalItem, builtin_path, load_items
from tasks.evaluation.store import EvalStore

# what each grader needs from every item: a reference, or a metadata key unless a parameter supplies it
_NEEDS_REFERENCE = frozenset({"exact_match", "match", "field_accuracy"})
_NEEDS_METADATA = {"refusal": ("expect", "expect"), "json_schema": ("schema", "schema")}


@dataclass(frozen=True)
class GraderInfo:
    """What a decision must record about a grader: versions, the judge and its human agreement."""

    id: str
    name: str
    version: str
    kind: Kind
    format: bool
    judge_model: str | None = None
    prompt_sha256: str | None = None
    human_agreement: dict[str, Any] | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    role: Role
    source: str
    items: list[EvalItem]
    graders: dict[str, Grader]
    pair_graders: dict[str, PairGrader]
    primary: str
    info: dict[str, GraderInfo]
    slice_by: str | None = None


def _items(config: SuiteConfig, heldout: Path | None, limit: int | None) -> list[EvalItem]:
    if config.items == HELDOUT:
        if heldout is None:
            raise ConfigError(f"suite {config.name!r} evaluates the held-out split, but there is none "
                              "(run the data step, or point the suite at an items file)")
        return load_items(heldout, limit)
    if config.items.startswith(BUILTIN_PREFIX):
        return load_items(builtin_path(config.items.removeprefix(BUILTIN_PREFIX)), limit)
    return load_items(Path(config.items), limit)


def _check_items(suite: str, grader: str, params: dict[str, Any], items: list[EvalItem]) -> None:
    if grader in _NEEDS_REFERENCE:
        missing = next((i for i in items if i.reference is None), None)
        if missing is not None:
            raise ConfigError(f"suite {suite!r}: grader {grader!r} needs a reference answer, and item "
                              f"{missing.key!r} has none")
    if grader in _NEEDS_METADATA:
        key, param = _NEEDS_METADATA[grader]
        missing = next((i for i in items if params.get(param) is None and key not in i.metadata), None)
        if missing is not None:
            raise ConfigError(f"suite {suite!r}: grader {grader!r} needs metadata.{key} on every item "
                              f"(or the parameter {param!r}); item {missing.key!r} has none")


def _info(gid: str, grader: Grader | PairGrader, store: EvalStore | None) -> GraderInfo:
    judge: Judge | None = getattr(grader, "judge", None)
    prompt = getattr(grader, "prompt_sha256", None) if judge is not None else None
    agreement = None
    if judge is not None and store is not None:
        agreement = store.calibration(grader.name, grader.version, judge.model.model_id, prompt)
    return GraderInfo(id=gid, name=grader.name, version=grader.version, kind=grader.kind,
                      format=grader.name in FORMAT_GRADERS,
                      judge_model=judge.model.model_id if judge else None,
                      prompt_sha256=prompt, human_agreement=agreement)


def build_suite(config: SuiteConfig, *, heldout: Path | None = None, judge: Judge | None = None,
                store: EvalStore | None = None, max_items: int | None = None) -> Suite:
    items = _items(config, heldout, config.max_items or max_items)
    graders: dict[str, Grader] = {}
    pairs: dict[str, PairGrader] = {}
    for grader_config in config.graders or []:
        _check_items(config.name, grader_config.name, grader_config.params, items)
        grader = build_grader(grader_config.name, judge, **grader_config.params)
        (pairs if grader.kind == "pairwise" else graders)[grader_config.key] = grader
    info = {gid: _info(gid, g, store) for gid, g in {**graders, **pairs}.items()}
    return Suite(name=config.name, role=config.role, source=config.items, items=items, graders=graders,
                 pair_graders=pairs, primary=config.primary_key, info=info, slice_by=config.slice_by)


def build_suites(config: EvalConfig, *, heldout: Path | None = None, judge: Judge | None = None,
                 store: EvalStore | None = None) -> list[Suite]:
    return [build_suite(s, heldout=heldout, judge=judge, store=store,
                        max_items=config.max_items if s.items == HELDOUT else None)
            for s in config.effective_suites]
