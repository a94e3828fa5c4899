"""Training-health checks on synthetic loss curves, and what a run directory gets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from providers.base import PreparedDataset, TrainingSpec
from tasks.rundir import RunDir
from tasks.training.health import classify, record_health

STEPS = range(1, 61)
HEALTHY = [{"step": s, "train_loss": 0.35 + 1.9 * math.exp(-3 * s / 60),
            "valid_loss": 0.45 + 1.8 * math.exp(-3 * s / 60)} for s in STEPS]
# the textbook picture: validation bottoms out near step 25 and climbs while training keeps falling
OVERFIT = [{"step": s, "train_loss": 0.05 + 2.0 * math.exp(-4 * s / 60),
            **({"valid_loss": 0.8 + 0.0004 * (s - 25) ** 2} if s % 5 == 0 else {})} for s in STEPS]
FLAT = [{"step": s, "train_loss": 2.3 + 0.01 * math.sin(s)} for s in STEPS]
MEMORISED = [{"step": s, "train_loss": 2.0 * math.exp(-12 * s / 60)} for s in STEPS]


@pytest.mark.parametrize(("rows", "verdict", "codes"), [
    (HEALTHY, "healthy", []),
    (OVERFIT, "warning", ["overfitting"]),
    (FLAT, "warning", ["flat"]),
    (MEMORISED, "warning", ["memorising"]),
    (HEALTHY[:3], "unknown", []),
], ids=["healthy", "overfitting", "flat", "memorising", "too-short"])
def test_curves_are_classified(rows: list[dict], verdict: str, codes: list[str]) -> None:
    health = classify(rows, epochs=3, train_examples=2000)
    assert (health.verdict, [f.code for f in health.findings]) == (verdict, codes)


def test_a_healthy_curve_without_validation_loss_stays_healthy() -> None:
    rows = [{"step": r["step"], "train_loss": r["train_loss"]} for r in HEALTHY]
    assert classify(rows, epochs=3, train_examples=2000).verdict == "healthy"


@pytest.mark.parametrize(("epochs", "examples", "warned"), [
    (3, 20_000, False), (5, 20_000, True), (5, 2_000, False), (8, 2_000, True), (10, 300, False),
    (12, 300, True)])
def test_too_many_epochs_for_the_data_size(epochs: int, examples: int, warned: bool) -> None:
    health = classify(HEALTHY, epochs=epochs, train_examples=examples)
    assert ("too_many_epochs" in [f.code for f in health.findings]) is warned


def test_the_run_directory_gets_the_verdict_the_curve_and_a_png(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "p", "0" * 64)
    data = PreparedDataset(train_path=tmp_path / "t.jsonl", sha256="x", train_examples=500)
    health = record_health(run, OVERFIT, TrainingSpec(base_model="m", epochs=3), data)
    assert health.warnings and health.warnings[0].startswith("training health: validation loss rose")
    png = (run.root / "training" / "loss_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    assert json.loads((run.root / "training" / "health.json").read_text())["findings"][0]["code"] == \
        "overfitting"
    assert run.manifest()["health"] == {"verdict": "warning", "findings": ["overfitting"],
                                        "file": "training/health.json"}
    assert "loss_curve.png" in (run.root / "training" / "health.md").read_text()
