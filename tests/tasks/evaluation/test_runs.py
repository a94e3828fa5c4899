"""`loraflow compare`: configuration and metric differences of two run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from providers.errors import ConfigError
from tasks.evaluation.runs import compare_runs, render_markdown


def make_run(root: Path, *, epochs: int, lora_r: int, value: float, outcome: str) -> Path:
    root.mkdir(parents=True)
    config = {"name": "p", "recipe": "voice-match", "run_root": str(root.parent),
              "training": {"base_model": "m", "epochs": epochs, "lora_r": lora_r}}
    manifest = {"config": config, "data": {"input_sha256": "abc"}, "health": {"verdict": "healthy"},
                "cost": {"estimate": {"training_usd": 1.5}}}
    comparison = {"suite": "target", "grader": "voice", "slice": None, "candidate_value": value,
                  "delta": value - 0.4}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "decision.json").write_text(json.dumps({"outcome": outcome, "comparisons": [
        comparison, {**comparison, "slice": "tone=formal", "candidate_value": 0.0}]}))
    return root


def test_config_and_metric_differences_side_by_side(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a" / "run1", epochs=3, lora_r=16, value=0.6, outcome="accept_weak")
    b = make_run(tmp_path / "b" / "run2", epochs=2, lora_r=16, value=0.75, outcome="accept")
    result = compare_runs(a, b)
    assert result.config == [("training.epochs", 3, 2)]  # run_root differs too, and says nothing
    metrics = {name: (va, vb) for name, va, vb in result.metrics}
    assert metrics["target/voice"] == (0.6, 0.75)
    assert metrics["target/voice (delta vs base)"] == pytest.approx((0.2, 0.35))
    text = render_markdown(result)
    assert "| training.epochs | 3 | 2 |" in text and "| target/voice | 0.6 | 0.75 | +0.15 |" in text
    assert "| decision | accept_weak | accept |" in text and "changed at once" not in text
    shown = CliRunner().invoke(app, ["compare", str(a), str(b), "--markdown"])
    assert shown.exit_code == 0 and "| training.epochs | 3 | 2 |" in shown.stdout


def test_two_changes_at_once_are_called_out_and_a_non_run_is_refused(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", epochs=3, lora_r=16, value=0.6, outcome="accept")
    b = make_run(tmp_path / "b", epochs=2, lora_r=8, value=0.6, outcome="accept")
    assert "2 settings changed at once" in render_markdown(compare_runs(a, b))
    with pytest.raises(ConfigError, match="not a run directory"):
        compare_runs(a, tmp_path)
