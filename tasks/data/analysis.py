"""From the scanned columns to decisions: duplicates, the split, leakage, and the dataset checks.

Rows are the usable examples of the input in file order; a user-supplied eval file's rows follow them
in the same signature store. `destination` says where each input row goes: DROPPED, TRAIN or EVAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from providers.formats import Severity
from tasks.data.checks import Finding, diversity, refusal_findings, volume_findings
from tasks.data.config import DataConfig
from tasks.data.dedupe import SignatureStore, clusters, similar_pairs
from tasks.data.filescan import FileScan, ScanPlan
from tasks.data.rules import Diagnostics
from tasks.data.scan import ScanSpec
from tasks.data.source import compression
from tasks.data.split import DROPPED, EVAL, TRAIN, eval_mask
from tasks.data.target import DataTarget
from tasks.data.tokens import TokenCounter


@dataclass
class Analysis:
    """Everything the report and the writer need, for one input (and an optional eval file)."""

    config: DataConfig
    target: DataTarget
    counter: TokenCounter
    diagnostics: Diagnostics
    scan: FileScan
    eval_scan: FileScan | None
    destination: np.ndarray
    exact_groups: list[np.ndarray] = field(default_factory=list)
    near_groups: list[np.ndarray] = field(default_factory=list)
    leaks: list[tuple[int, int]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    diversity: dict[str, float | int] = field(default_factory=dict)

    def count(self, side: int) -> int:
        return int(np.count_nonzero(self.destination == side))

    @property
    def eval_file_rows(self) -> np.ndarray:
        """The eval file's rows that are written (all but those over the context limit)."""
        if self.eval_scan is None:
            return np.empty(0, dtype=np.int64)
        keep = np.ones(len(self.eval_scan.columns), dtype=bool)
        keep[self.eval_scan.too_long] = False
        return np.flatnonzero(keep)

    @property
    def eval_examples(self) -> int:
        return self.count(EVAL) + self.eval_file_rows.size


def analyse(config: DataConfig, target: DataTarget, diagnostics: Diagnostics, *,
            staging: Path | None = None, eval_staging: Path | None = None,
            plan: ScanPlan | None = None) -> Analysis:
    """Scan the input (and the eval file), then decide duplicates, split and leakage, and run the checks.

    With `staging` (and `eval_staging`), the usable examples are staged there as part files."""
    counter = target.token_counter()
    store, strata = SignatureStore(), {}
    plan = plan or ScanPlan(workers=config.workers)
    scan = FileScan(_spec(config, target, config.path, config.stratify_by), diagnostics, store, strata=strata,
                    plan=plan).run(staging)
    eval_scan = None
    if config.eval_path is not None:
        eval_scan = FileScan(_spec(config, target, config.eval_path, None),
                             diagnostics.for_file(str(config.eval_path)), store, plan=plan).run(eval_staging)
    analysis = Analysis(config, target, counter, diagnostics, scan, eval_scan,
                        destination=np.full(len(scan.columns), TRAIN, dtype=np.int8))
    analysis.destination[scan.too_long] = DROPPED
    _deduplicate(analysis, store)
    _split(analysis)
    _check_leakage(analysis, store)
    _dataset_checks(analysis)
    return analysis


def _spec(config: DataConfig, target: DataTarget, path: Path, stratify_by: str | None) -> ScanSpec:
    return ScanSpec(path, target, config.pii, dict(config.severity), stratify_by, compression(path))


def _deduplicate(analysis: Analysis, store: SignatureStore) -> None:
    policy = analysis.config.dedupe
    keys = analysis.scan.columns.numpy("key")
    order = np.argsort(keys, kind="stable")
    starts = np.ones(keys.size, dtype=bool)
    starts[1:] = keys[order[1:]] != keys[order[:-1]]
    first = np.zeros(keys.size, dtype=bool)
    first[order[starts]] = True
    analysis.exact_groups = _duplicate_groups(order, starts)
    if policy.exact == "remove":
        analysis.destination[~first] = DROPPED
    if policy.near == "off":
        return
    unique = np.flatnonzero(first & (analysis.destination != DROPPED))
    analysis.near_groups = clusters(similar_pairs(store, unique, policy.threshold), unique)
    if policy.near == "remove":
        for group in analysis.near_groups:
            analysis.destination[group[1:]] = DROPPED


def _duplicate_groups(order: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """The runs of equal keys longer than one, as sorted row arrays in file order (only those: one
    array per unique key would cost more memory than all the signatures)."""
    bounds = np.r_[np.flatnonzero(starts), starts.size]
    long_runs = np.flatnonzero(np.diff(bounds) > 1)
    groups = [np.sort(order[bounds[i]:bounds[i + 1]]) for i in long_runs.tolist()]
    return sorted(groups, key=lambda g: int(g[0]))


def _split(analysis: Analysis) -> None:
    config, columns = analysis.config, analysis.scan.columns
    if config.eval_path is not None:
        return
    alive = np.flatnonzero(analysis.destination != DROPPED)
    strata = columns.numpy("stratum")[alive] if config.stratify_by else None
    to_eval = eval_mask(columns.numpy("key")[alive], salt=config.split_salt, fraction=config.eval_fraction,
                        strata=strata)
    analysis.destination[alive[to_eval]] = EVAL


def _check_leakage(analysis: Analysis, store: SignatureStore) -> None:
    """Near-duplicates across train and eval; by policy the training side is dropped."""
    policy, rows = analysis.config.dedupe, len(analysis.scan.columns)
    if analysis.eval_scan is None and policy.exact == "remove" and policy.near == "remove":
        return  # every pair above the threshold was already collapsed into one example
    kept = np.flatnonzero(analysis.destination != DROPPED)
    is_eval = analysis.destination[kept] == EVAL
    if analysis.eval_scan is not None:
        extra = rows + analysis.eval_file_rows
        kept, is_eval = np.r_[kept, extra], np.r_[is_eval, np.ones(extra.size, dtype=bool)]
    pairs = similar_pairs(store, kept, policy.threshold, across=is_eval)
    train_rows, eval_rows = [], []
    for a, b in zip(pairs.first.tolist(), pairs.second.tolist(), strict=True):
        train_row, eval_row = (a, b) if a < rows and analysis.destination[a] == TRAIN else (b, a)
        train_rows.append(train_row)
        eval_rows.append(eval_row)
    analysis.leaks = list(zip(train_rows, eval_rows, strict=True))
    if policy.leakage == "remove" and train_rows:
        analysis.destination[np.array(train_rows)] = DROPPED


def _dataset_checks(analysis: Analysis) -> None:
    config, columns = analysis.config, analysis.scan.columns
    train = analysis.count(TRAIN)
    kept = analysis.destination != DROPPED
    refusals = int(np.count_nonzero(columns.numpy("refusal")[kept]))
    analysis.findings = volume_findings(train, analysis.eval_examples, config.recipe, analysis.target.format)
    analysis.findings += refusal_findings(refusals, int(np.count_nonzero(kept)), config.recipe)
    analysis.diversity = diversity(columns.numpy("system")[kept], refusals, int(np.count_nonzero(kept)))
    if analysis.counter.note:
        severity = Severity.INFO if analysis.counter.exact else Severity.WARNING
        analysis.findings.append(Finding("tokenizer_estimate", severity, analysis.counter.note))
    for scan in (analysis.scan, analysis.eval_scan):
        if scan is not None and scan.spec.compression:
            note = (f"{scan.spec.path.name} is {scan.spec.compression}-compressed: read as it is, on one "
                    "core (a compressed file cannot be split)")
            analysis.findings.append(Finding("compressed", Severity.INFO, note))
    if analysis.target.context_tokens is None:
        analysis.findings.append(Finding("context_unknown", Severity.WARNING,
                                         f"{_no_limit(analysis.target.base_model)}; example lengths were not "
                                         "checked"))
    for finding in analysis.findings:
        analysis.diagnostics.add(None, finding.code, finding.message, finding.severity)


def _no_limit(model: str) -> str:
    return f"the catalog has no context limit for {model}" if model else "no model given, so no context limit"
