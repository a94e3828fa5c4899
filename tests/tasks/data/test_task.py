"""The @task wrapper inside a flow: the report becomes the "data-report" artifact, even when the data is
refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.artifacts import Artifact

from providers.errors import DataError
from tasks.data.config import DataConfig
from tasks.data.filescan import ScanPlan
from tasks.data.prepare import prepare_dataset
from tasks.rundir import RunDir
from tests.conftest import write_jsonl
from tests.tasks.data.helpers import OPENAI, distinct


@flow
def data_only(config: DataConfig, run_root: Path, plan: ScanPlan | None = None) -> int:
    dataset = prepare_dataset(config, RunDir.create(run_root, "p", "c" * 64), OPENAI, plan)
    return dataset.train_examples


def test_the_report_is_published_as_an_artifact(prefect_api: str, tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", distinct(40))
    assert data_only(DataConfig(path=good), tmp_path / "runs") > 0
    assert Artifact.get("data-report").data.startswith("# Data report: good.jsonl")
    bad = write_jsonl(tmp_path / "bad.jsonl", [*distinct(40), "{bad"])
    with pytest.raises(DataError):
        data_only(DataConfig(path=bad), tmp_path / "runs")
    assert "**blocked**: 1 error," in Artifact.get("data-report").data


def test_the_scan_spreads_over_processes_inside_a_flow(prefect_api: str, tmp_path: Path) -> None:
    """Prefect runs the task beside its own threads: the workers come from a fork server, and the result
    is the one a single process gives."""
    good = write_jsonl(tmp_path / "good.jsonl", distinct(300))
    spread = data_only(DataConfig(path=good), tmp_path / "runs", ScanPlan(workers=2, chunk_bytes=2000))
    assert spread == data_only(DataConfig(path=good), tmp_path / "runs", ScanPlan(workers=1))
