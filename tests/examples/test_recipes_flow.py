"""One recipe example end to end on the emulator (format-strict: OpenAI adapter, structured-output decoding),
with the training-health warnings reaching the decision. The other recipes are covered piecewise in
tests/tasks/test_recipes.py (their config resolution and graders); a full flow costs seconds each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact

from flows.config import load_pipeline
from flows.finetune import finetune

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "format-strict"


@pytest.mark.usefixtures("prefect_api")
def test_the_format_strict_recipe_runs_and_warns_about_its_epochs(tmp_path: Path, loraflow_home: Path) -> None:
    config = yaml.safe_load((RECIPE / "pipeline.yaml").read_text())
    config["data"]["path"] = str(RECIPE / config["data"]["path"])
    config["training"]["epochs"] = 12  # the user's key wins over the preset's 3, and is too many for 80 examples
    config.update(run_root=str(tmp_path / "runs"), poll={"min_interval_s": 0.01, "max_interval_s": 0.05,
                                                         "max_wait_s": 120})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))

    summary = finetune(load_pipeline(path))

    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    assert manifest["config"]["recipe"] == "format-strict" and manifest["config"]["training"]["epochs"] == 12
    assert manifest["config"]["eval"]["decoding"]["json_schema"]["required"] == ["name", "role", "city"]
    assert manifest["health"]["findings"] == ["too_many_epochs"]
    assert (summary.run_dir / "training" / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    assert any(n.startswith("training health: 12 epochs over") for n in summary.decision.notes)
    assert summary.decision.comparisons[0].metric == "target/json_schema"
    assert summary.decision.comparisons[0].candidate_value > summary.decision.comparisons[0].base_value
    assert "loss_curve.png" in Artifact.get("training-health").data
