"""Run storage: a local path stays a path written by rename; a URL goes through fsspec, one PUT a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.config import Pipeline
from providers.errors import ConfigError
from tasks.rundir import RunDir, atomic_write, sha256_file
from tasks.runstore import check_location, is_remote, run_path
from tests.s3 import keys

PIPELINE = {"name": "p", "provider": {"name": "fake"}, "data": {"path": "x.jsonl"},
            "training": {"base_model": "fake-base"}}


def test_a_local_root_is_a_path_and_a_url_is_not() -> None:
    assert run_path("runs") == Path("runs") and not is_remote(run_path("runs"))
    remote = run_path("memory://bucket/runs")
    assert is_remote(remote) and str(remote / "p" / "manifest.json") == "memory://bucket/runs/p/manifest.json"


def test_credentials_in_the_url_are_refused_without_being_repeated() -> None:
    with pytest.raises(ConfigError, match="credentials do not belong") as caught:
        check_location("s3://AKIAEXAMPLE:very-secret@bucket/runs")
    assert "very-secret" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:  # as Prefect reports a bad flow parameter
        Pipeline.model_validate({**PIPELINE, "run_root": "s3://AKIAEXAMPLE:very-secret@bucket/runs"})
    assert "very-secret" not in str(caught.value) and "credentials do not belong" in str(caught.value)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a storage protocol"):
        check_location("nosuchstore://bucket/runs")


def test_a_store_whose_package_is_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    def missing(protocol: str) -> None:
        raise ImportError("Please install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    with pytest.raises(ConfigError, match=r"pip install 'loraflow\[gcs\]'"):
        check_location("gs://bucket/runs")


def test_the_default_run_root_is_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Pipeline.model_validate(PIPELINE).run_root == "runs"
    monkeypatch.setenv("LORAFLOW_RUN_ROOT", "memory://team/runs")
    pipeline = Pipeline.model_validate(PIPELINE)
    assert pipeline.run_root == "memory://team/runs" and str(pipeline.runs) == "memory://team/runs/p"
    # a Path from Python code is taken as its text; the file's own value wins over the environment
    assert Pipeline.model_validate({**PIPELINE, "run_root": Path("/tmp/runs")}).run_root == "/tmp/runs"


def test_a_local_run_writes_where_it_always_did(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "p", "c" * 64)
    assert run.work == run.root and run.work_data == run.data_dir and run.data_dir.is_dir()
    run.record("data", {"rows": 3})
    assert json.loads(run.manifest_path.read_text())["data"] == {"rows": 3}
    assert run.fetch(run.manifest_path) == run.manifest_path
    run.close()
    assert run.manifest_path.exists()  # closing a local run removes nothing


def test_a_run_in_an_object_store_keeps_only_its_local_copies_until_closed(s3: dict[str, str]) -> None:
    run = RunDir.create(run_path("s3://bucket/runs"), "p", "c" * 64)
    assert is_remote(run.root) and run.work.is_dir()
    run.record("data", {"rows": 3})
    atomic_write(run.root / "report.md", "# report\n")
    made = run.work_data / "train.jsonl"
    made.write_text('{"messages": []}\n')
    assert str(run.publish(made)).endswith("/data/train.jsonl")
    prefix = str(run.root).removeprefix("s3://bucket/") + "/"
    assert keys(s3, prefix=prefix) == [prefix + name for name in ("data/train.jsonl", "manifest.json",
                                                                  "report.md")]
    assert json.loads(run.manifest_path.read_text())["data"] == {"rows": 3}
    fetched = run.fetch(run.data_dir / "train.jsonl")
    assert fetched.read_text() == made.read_text() and sha256_file(run.data_dir / "train.jsonl") == \
        sha256_file(fetched)
    run.close()
    assert not run.work.exists()  # the local disk holds nothing of the run
    assert keys(s3, prefix=prefix)  # the store keeps it


class _TrainsHere:
    """A provider whose trained output is files on this disk, as the local trainer's is."""

    name = "local"

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir

    def trained_files(self, job: object) -> dict[str, Path]:
        return {"job.json": self.job_dir / "job.json", "adapter": self.job_dir / "adapter"}


def test_a_local_adapter_goes_with_a_run_in_the_store_and_serves_from_another_machine(
        s3: dict[str, str], tmp_path: Path, loraflow_home: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from providers.base import JobRef
    from tasks.training.serving import keep_trained_files

    job_dir = tmp_path / "jobs" / "local-1"
    (job_dir / "adapter").mkdir(parents=True)
    (job_dir / "job.json").write_text(json.dumps({"base_path": "/models/base"}))
    (job_dir / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (job_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 1024)
    run = RunDir.create(run_path("s3://bucket/runs"), "p", "c" * 64)
    keep_trained_files(_TrainsHere(job_dir), JobRef(provider="local", job_id="local-1"), run)
    assert run.manifest()["trained_files"] == {"folder": "training/output", "names": ["adapter", "job.json"]}
    run.close()

    served = CliRunner().invoke(app, ["serve-model", str(run.root), "--dry-run", "--name", "bullets"])
    assert served.exit_code == 0, served.output
    copied = next((loraflow_home / "served").iterdir())
    assert (copied / "adapter" / "adapter_model.safetensors").stat().st_size == 1024
    assert json.loads((copied / "serve.json").read_text())["command"][:3] == ["vllm", "serve", "/models/base"]
