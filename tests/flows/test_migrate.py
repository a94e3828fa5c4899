"""`loraflow migrate`: the quickstart, trained once on OpenAI, moved to Azure OpenAI on the emulator with the
same frozen data and eval set, and gated against the champion."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from flows.config import load_pipeline
from flows.finetune import finetune
from flows.migrate import migrate
from tasks.lifecycle.monitor import MonitorConfig, retirement_check
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tests.conftest import QUICKSTART

pytestmark = pytest.mark.usefixtures("prefect_api", "emulator")


def quickstart(tmp_path: Path) -> Path:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    config.update(run_root=str(tmp_path / "runs"), registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
                  poll={"min_interval_s": 0.01, "max_interval_s": 0.05, "max_wait_s": 120})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_quickstart_moves_to_azure_openai_against_its_champion(tmp_path: Path) -> None:
    pipeline = load_pipeline(quickstart(tmp_path))
    first = finetune(pipeline)
    assert first.decision.accepted
    frozen = first.run_dir / "data" / "eval.jsonl"

    moved = migrate(pipeline, "gpt-4o-mini-2024-07-18", "azure_openai")

    manifest = json.loads((moved.run_dir / "manifest.json").read_text())
    migration = manifest["migration"]
    assert migration["from"] == {"provider": "openai", "base_model": "gpt-4o-mini-2024-07-18"}
    assert migration["to"] == {"provider": "azure_openai", "base_model": "gpt-4o-mini-2024-07-18"}
    assert migration["frozen_data"][1] == str(frozen) and migration["champion"] == "gpt-4o-mini-2024-07-18"
    assert set(moved.outcomes) == {"vs-base", "vs-champion"}  # the decision compares with the champion
    champion = json.loads((moved.run_dir / "vs-champion" / "decision.json").read_text())
    assert champion["primary"] == "target/five_verb_bullets" and champion["never_stops"] is not None
    assert manifest["serving"]["state"] in ("kept", "released")  # a deployment made for the candidate
    assert manifest["config"]["provider"] == {"name": "azure_openai", "endpoint": "emulator", "options": {},
                                              "api_key_secret": None}
    versions = ModelRegistry(Registry.open(pipeline.registry_url)).versions("quickstart")
    if moved.version is not None:
        assert versions[-1].provider == "azure_openai" and moved.winner == "candidate"


def test_the_monitor_prints_the_migrate_command(tmp_path: Path) -> None:
    pipeline = load_pipeline(quickstart(tmp_path)).model_dump(mode="json")
    found = retirement_check(pipeline, MonitorConfig(), ["gpt-4o-mini-2024-07-18"], date(2026, 12, 20),
                             tmp_path)
    assert "recommends gpt-6-luna, which the catalog does not list as fine-tunable" in found[0].message
    assert "loraflow migrate <the pipeline file of quickstart> --base gpt-4o-mini-2024-07-18 --provider " \
           "azure_openai" in found[0].message
    vertex = {**pipeline, "provider": {"name": "vertex"}}
    retired = retirement_check(vertex, MonitorConfig(), ["gemini-2.5-pro"], date(2026, 12, 4), tmp_path)
    assert "--base gemini-3.5-flash" in retired[0].message and retired[0].severity == "alert"
