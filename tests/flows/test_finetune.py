"""End-to-end runs of the finetune flow under one session Prefect server (about 1-3 s per flow)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.flow_runs import resume_flow_run

from flows.config import load_pipeline
from flows.finetune import finetune
from providers.errors import JobFailed
from tests.conftest import QUICKSTART
from tests.flows.pipelines import paused_run_id

pytestmark = pytest.mark.usefixtures("prefect_api")


def pipeline_file(tmp_path: Path, *, provider: dict, **overrides: object) -> Path:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config.update(provider=provider, run_root=str(tmp_path / "runs"), **overrides)
    config["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    config["poll"] = {"min_interval_s": 0.01, "max_interval_s": 0.05, "max_wait_s": 60}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fake_provider_run_accepts_and_writes_the_lineage(tmp_path: Path, loraflow_home: Path) -> None:
    summary = finetune(load_pipeline(pipeline_file(tmp_path, provider={"name": "fake"})))
    assert summary.decision.outcome == "accept"
    run = summary.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest) == {"run", "config", "data", "cost", "training", "health", "model", "evaluation",
                             "decision", "registered", "evaluated_against"}
    assert manifest["evaluated_against"]["artifact"] == "served"  # the fake serves the tuned id itself
    assert manifest["training"]["job"]["job_id"] == manifest["model"]["job_id"]
    outputs = (run / "eval" / "outputs.jsonl").read_text().splitlines()
    assert len(outputs) == 2 * sum(suite["items"] for suite in manifest["evaluation"]["suites"].values())
    assert {json.loads(line)["role"] for line in outputs} == {"base", "candidate"}
    assert json.loads((run / "decision.json").read_text())["rules_version"] == "rules-v2"
    comparison = Artifact.get("eval-comparison")
    assert comparison.type == "table" and "five_verb_bullets" in comparison.data
    assert "# Data report: bullets.jsonl" in Artifact.get("data-report").data


def test_transient_errors_are_retried_by_the_flow(tmp_path: Path, loraflow_home: Path) -> None:
    provider = {"name": "fake", "options": {"transient_errors": {"get_job": 1, "upload": 1}}}
    summary = finetune(load_pipeline(pipeline_file(tmp_path, provider=provider)))
    assert summary.decision.outcome == "accept"


def test_a_failed_job_fails_the_flow_with_the_provider_message(tmp_path: Path, loraflow_home: Path) -> None:
    provider = {"name": "fake", "options": {"end_failed": "training file line 7 is not chat"}}
    with pytest.raises(JobFailed, match="line 7 is not chat"):
        finetune(load_pipeline(pipeline_file(tmp_path, provider=provider)))


def test_a_cost_above_the_threshold_waits_for_approval(tmp_path: Path, loraflow_home: Path) -> None:
    pipeline = load_pipeline(pipeline_file(tmp_path, provider={"name": "fake"},
                                           budget={"approve_above_usd": 0, "approval_poll_s": 1}))
    outcome: dict[str, object] = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=finetune(pipeline)))
    runner.start()
    resume_flow_run(paused_run_id(), run_input={"approve": True, "reviewer": "ana", "note": "ok"})
    runner.join(timeout=120)
    summary = outcome["summary"]
    assert summary.decision.outcome == "accept"
    cost = json.loads((summary.run_dir / "manifest.json").read_text())["cost"]
    assert cost["approval"]["reviewer"] == "ana"


CLOUDS = {
    "vertex": ({"project": "loraflow-test", "gcs_bucket": "loraflow-data"}, "gemini-3.5-flash", None),
    "bedrock": ({"bucket": "loraflow-data", "role_arn": "arn:aws:iam::123456789012:role/BedrockFT"},
                "amazon.nova-lite-v1:0:300k", 42),
}


@pytest.mark.parametrize("name", list(CLOUDS))
@pytest.mark.usefixtures("emulator")
def test_the_quickstart_runs_on_the_cloud_providers_through_the_emulator(name: str, tmp_path: Path) -> None:
    options, base_model, seed = CLOUDS[name]
    target_only = [{"name": "target", "role": "target", "items": "heldout", "primary": "five_verb_bullets",
                    "graders": [{"name": "five_verb_bullets"}]}]
    path = pipeline_file(tmp_path, provider={"name": name, "endpoint": "emulator", "options": options},
                         training={"base_model": base_model, "epochs": 2, "seed": seed, "suffix": "bullets"},
                         eval={"suites": target_only, "max_items": 20, "decoding": {"max_tokens": 256}})
    summary = finetune(load_pipeline(path))
    assert summary.decision.outcome == "accept", summary.decision.reason
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    assert manifest["training"]["provider"] == name and manifest["model"]["model_id"] == summary.model_id
    if name == "bedrock":
        # a custom model answers only once served: an on-demand deployment, kept when accepted
        assert manifest["serving"]["state"] == "kept"
        assert ":custom-model-deployment/" in manifest["serving"]["served_as"]
