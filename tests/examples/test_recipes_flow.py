"""Every recipe example end to end on the emulator: format-strict in detail (OpenAI adapter, structured-output
decoding, training-health warnings reaching the decision), the other four on a small eval set, each deciding
on its recipe's own metric. What the decisions say comes from the emulator's imitation models, not from real
ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact

from emulator import EmulatorServer
from flows.config import load_pipeline
from flows.finetune import finetune

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"
RECIPE = RECIPES / "format-strict"


@pytest.mark.usefixtures("prefect_api", "emulator")
def test_the_format_strict_recipe_runs_and_warns_about_its_epochs(tmp_path: Path) -> None:
    config = yaml.safe_load((RECIPE / "pipeline.yaml").read_text())
    config["data"]["path"] = str(RECIPE / config["data"]["path"])
    # the user's key wins over the preset's 3, and is too many for 80 examples
    config["training"]["epochs"] = 12
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


# recipe -> (the primary metric its example decides on, what else the run must show)
OTHERS = {"voice-match": "voice/llm_pairwise", "dsl": "target/syntax_check", "distillation": "target/match",
          "safety": "refusal/refusal"}


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("recipe", list(OTHERS))
def test_every_other_recipe_runs_and_decides_on_its_own_metric(recipe: str, tmp_path: Path,
                                                               emulator: EmulatorServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = RECIPES / recipe
    config = yaml.safe_load((root / "pipeline.yaml").read_text())
    for key in ("path", "eval_path"):
        if config["data"].get(key):
            config["data"][key] = str(root / config["data"][key])
    for suite in config["eval"]["suites"]:
        if not str(suite["items"]).startswith(("builtin:", "heldout")):
            suite["items"] = str(root / suite["items"])
        suite["max_items"] = 12
    config.update(run_root=str(tmp_path / "runs"), poll={"min_interval_s": 0.01, "max_interval_s": 0.05,
                                                         "max_wait_s": 120})
    if "judge" in config["eval"]:  # the voice recipe's judge, on the emulator instead of Anthropic
        monkeypatch.setenv("OPENAI_API_KEY", "emulator")
        config["eval"]["judge"].update(provider="openai", model="gpt-4o-mini-2024-07-18",
                                       endpoint=emulator.base_url, votes=1)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = finetune(load_pipeline(path))

    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    assert manifest["config"]["recipe"] == recipe
    assert summary.decision.primary == OTHERS[recipe]
    if recipe == "voice-match":
        # an imitation model cannot judge: every verdict is unusable and the gate refuses to decide (the
        # pairwise judge itself is tested with scripted judges in tests/tasks/evaluation/test_judge.py)
        assert summary.decision.outcome == "invalid" and "infra" in summary.decision.reason
    else:
        assert summary.decision.outcome != "invalid", summary.decision.reason
    if recipe == "distillation":
        assert any("teacher" in note for note in summary.decision.notes)
    if recipe == "safety":
        assert {c.metric for c in summary.decision.comparisons} >= {"refusal/refusal", "over-refusal/refusal"}
