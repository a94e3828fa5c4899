"""The data step: validate, split, report, and record the lineage of the prepared files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from providers.base import PreparedDataset
from providers.errors import ConfigError, DataError
from tasks.data.config import DataConfig
from tasks.data.split import SplitWriter
from tasks.data.validate import ChatFileValidator
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.rundir import RunDir, atomic_write, sha256_file, write_json


def prepare(config: DataConfig, run: RunDir) -> PreparedDataset:
    """Validate `config.path` and split it into the run's data directory; DataError lists every problem."""
    source, eval_fraction, salt = config.path, config.eval_fraction, config.split_salt
    validator = ChatFileValidator(source)
    writer = SplitWriter(run.data_dir, salt=salt, eval_fraction=eval_fraction)
    try:
        for _, example in validator.examples():
            writer.add(example)
    except BaseException:
        writer.discard()
        raise
    report = _report(source, validator, writer.counts)
    write_json(run.root / "report.json", report)
    atomic_write(run.root / "report.md", _markdown(report))
    if validator.problems:
        writer.discard()
        raise DataError(validator.problems)
    paths = writer.commit()
    if writer.counts["train"] < config.min_train_examples:
        raise ConfigError(f"{source}: {writer.counts['train']} training examples after the split; "
                          f"data.min_train_examples requires at least {config.min_train_examples}")
    files = {side: sha256_file(path) for side, path in paths.items()}
    dataset = PreparedDataset(
        train_path=paths["train"], eval_path=paths["eval"], train_examples=writer.counts["train"],
        eval_examples=writer.counts["eval"],
        sha256=hashlib.sha256(f"{files['train']}:{files['eval']}".encode()).hexdigest(),
    )
    run.record("data", {"input": str(source), "input_sha256": report["input_sha256"],
                        "train_sha256": files["train"], "eval_sha256": files["eval"],
                        "prepared_sha256": dataset.sha256, "split": {"salt": salt, "eval_fraction": eval_fraction},
                        "counts": writer.counts})
    return dataset


@task(name="prepare-data", **LOCAL_WORK)
def prepare_dataset(config: DataConfig, run: RunDir) -> PreparedDataset:
    try:
        dataset = prepare(config, run)
    finally:
        if (run.root / "report.md").exists():
            create_markdown_artifact(markdown=(run.root / "report.md").read_text(encoding="utf-8"),
                                     key="data-report", description=f"data report of {config.path.name}")
    milestone("prepare", "prepared %d train and %d eval examples from %s", dataset.train_examples,
              dataset.eval_examples, config.path.name)
    return dataset


def _report(source: Path, validator: ChatFileValidator, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "input": str(source), "input_sha256": validator.digest.hexdigest(), "lines": validator.lines,
        "valid_examples": sum(counts.values()), "train_examples": counts["train"],
        "eval_examples": counts["eval"], "problem_count": validator.problem_count,
        "problems": [vars(p) for p in validator.problems], "warnings": [vars(w) for w in validator.warnings],
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Data report: {Path(report['input']).name}", "",
             "| lines | valid | train | eval | problems | warnings |", "|---|---|---|---|---|---|",
             (f"| {report['lines']} | {report['valid_examples']} | {report['train_examples']} | "
              f"{report['eval_examples']} | {report['problem_count']} | {len(report['warnings'])} |"), ""]
    for problem in report["problems"][:50]:
        lines.append(f"- line {problem['line']}: `{problem['code']}` {problem['reason']}")
    return "\n".join(lines) + "\n"
