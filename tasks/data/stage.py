"""The data step as plain functions: one pass to check and stage the input, decisions over the whole
set, then the split written atomically, the report, and the lineage of the prepared files.

Nothing here imports Prefect: `loraflow data` and the benchmark call these directly; the flow calls the
`prepare_dataset` task in tasks.data.prepare."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Self

from providers.base import PreparedDataset
from providers.errors import ConfigError, DataError
from tasks.data import pii
from tasks.data.analysis import Analysis, analyse
from tasks.data.config import DataConfig
from tasks.data.filescan import ScanPlan
from tasks.data.report import build_report, render_markdown
from tasks.data.rules import Diagnostic, Diagnostics
from tasks.data.split import TRAIN, write_split
from tasks.data.target import DataTarget
from tasks.rundir import RunDir, atomic_write, sha256_file, write_json
from tasks.runstore import RunPath

# what the flow gets when it names no target: the OpenAI chat format, no model limits
UNSPECIFIED = DataTarget(provider="openai", base_model="")


def prepare(config: DataConfig, run: RunDir, target: DataTarget = UNSPECIFIED,
            plan: ScanPlan | None = None) -> PreparedDataset:
    """Check, scrub, deduplicate and split `config.path` into the run's data directory.

    Writes report.json and report.md whatever happens; raises DataError listing the errors (and writes
    no prepared file) when the data cannot go to `target`.
    """
    diagnostics = Diagnostics(target.format, config.severity)
    with ExitStack() as stack:
        staged = stack.enter_context(_StagingDir(run.work_data, "input"))
        eval_staged = stack.enter_context(_StagingDir(run.work_data, "eval")) if config.eval_path else None
        analysis = analyse(config, target, diagnostics, staging=staged.path,
                           eval_staging=eval_staged.path if eval_staged else None, plan=plan)
        report = _write_report(analysis, run.root)
        if diagnostics.errors:
            raise DataError(diagnostics.problems(str(config.path)))
        if analysis.count(TRAIN) < config.min_train_examples:
            raise ConfigError(f"{config.path}: {analysis.count(TRAIN)} training examples after the split; "
                              f"data.min_train_examples requires at least {config.min_train_examples}")
        written = write_split(analysis.scan.staged, analysis.destination, run.work_data,
                              analysis.eval_scan.staged if analysis.eval_scan else None,
                              analysis.eval_file_rows)
    paths = {side: path for side, (path, _) in written.items()}  # local files: what a provider SDK uploads
    for path in paths.values():
        run.publish(path)
    files = {side: digest for side, (_, digest) in written.items()}
    dataset = PreparedDataset(
        train_path=paths["train"], eval_path=paths["eval"], train_examples=analysis.count(TRAIN),
        eval_examples=analysis.eval_examples, train_tokens=report["tokens"]["train"],
        sha256=hashlib.sha256(f"{files['train']}:{files['eval']}".encode()).hexdigest(),
    )
    run.record("data", _lineage(config, analysis, report, files, dataset))
    return dataset


def check_file(config: DataConfig, target: DataTarget, sink: Callable[[Diagnostic], None] | None = None,
               plan: ScanPlan | None = None) -> dict[str, Any]:
    """Everything `prepare` checks, without writing anything; returns the report."""
    analysis = analyse(config, target, Diagnostics(target.format, config.severity, sink=sink), plan=plan)
    return build_report(analysis)


def _write_report(analysis: Analysis, root: RunPath) -> dict[str, Any]:
    report = build_report(analysis)
    write_json(root / "report.json", report)
    atomic_write(root / "report.md", render_markdown(report))
    return report


def _lineage(config: DataConfig, analysis: Analysis, report: dict[str, Any], files: dict[str, str],
             dataset: PreparedDataset) -> dict[str, Any]:
    return {"input": str(config.path), "input_sha256": report["input_sha256"],
            "eval_input": str(config.eval_path) if config.eval_path else None,
            "train_sha256": files["train"], "eval_sha256": files["eval"], "prepared_sha256": dataset.sha256,
            "split": {"salt": config.split_salt, "eval_fraction": config.eval_fraction,
                      "stratify_by": config.stratify_by},
            "target": report["target"], "tokenizer": analysis.counter.name,
            "scrub": {"policy": config.pii.policy, "types": sorted(config.pii.types),
                      "rules_sha256": sha256_file(Path(pii.__file__))},
            "dedupe": config.dedupe.model_dump(), "counts": report["counts"], "tokens": report["tokens"]}


class _StagingDir:
    """A hidden temporary folder next to the outputs for the staged part files, removed on exit whatever
    happens."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".staged"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
