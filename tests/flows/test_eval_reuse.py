"""The quickstart after its registry is lost: the job is found at the provider and the evaluation is read back
from the earlier run directory, so the second run pays for no answer and reaches the same decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.connection import EMULATOR_URL
from tests.conftest import QUICKSTART
from tests.flows.pipelines import cli_env, loraflow

ANSWERS = 544  # the quickstart's 122 held-out and 150 general items, base and candidate


@pytest.mark.timeout(600)
def test_a_quickstart_after_registry_loss_pays_for_no_answer_again(tmp_path: Path, prefect_api: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in cli_env(prefect_api, home).items() if k != EMULATOR_URL}
    runs = []
    for _ in range(2):
        result = loraflow("run", str(QUICKSTART / "pipeline.yaml"), env=env, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        (home / "registry.db").unlink()  # a new machine, a deleted volume, a fresh database
        runs.append(max((tmp_path / "runs" / "quickstart").iterdir()))
    counters = json.loads((home / "emulator" / "state.json").read_text())["counters"]
    assert (counters["jobs_created"], counters["completions"]) == (1, ANSWERS), counters
    first, second = (json.loads((run / "manifest.json").read_text()) for run in runs)
    assert first["evaluation"]["usage"]["calls"] == ANSWERS
    assert second["evaluation"]["usage"] == {"calls": 0, "cache_hits": ANSWERS, "reused": ANSWERS,
                                                  "retries": 0, "failures": 0}
    assert first["model"] == second["model"]
    decisions = [json.loads((run / "decision.json").read_text()) for run in runs]
    assert decisions[0]["outcome"] == decisions[1]["outcome"] == "accept"
    assert decisions[0]["comparisons"] == decisions[1]["comparisons"]
