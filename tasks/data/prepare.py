"""The data step as a Prefect task: `prepare` (tasks.data.stage) plus the report as the "data-report"
artifact, published whether or not the data passed."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from providers.base import PreparedDataset
from tasks.data.config import DataConfig
from tasks.data.filescan import ScanPlan
from tasks.data.stage import UNSPECIFIED, check_file, prepare
from tasks.data.target import DataTarget
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.rundir import RunDir

__all__ = ["check_file", "prepare", "prepare_dataset"]


@task(name="prepare-data", **LOCAL_WORK)
def prepare_dataset(config: DataConfig, run: RunDir, target: DataTarget = UNSPECIFIED,
                    plan: ScanPlan | None = None) -> PreparedDataset:
    try:
        dataset = prepare(config, run, target, plan)
    finally:
        if (run.root / "report.md").exists():
            create_markdown_artifact(markdown=(run.root / "report.md").read_text(encoding="utf-8"),
                                     key="data-report", description=f"data report of {config.path.name}")
    milestone("prepare", "prepared %d train and %d eval examples from %s", dataset.train_examples,
              dataset.eval_examples, config.path.name)
    return dataset
