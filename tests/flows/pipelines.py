"""Pipeline files and `loraflow` subprocesses for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from tests.conftest import QUICKSTART

# The quickstart's target suite alone, for tests about durability rather than evaluation: the built-in
# general suite adds 300 answers to every run.
TARGET_ONLY = [{"name": "target", "role": "target", "items": "heldout", "primary": "five_verb_bullets",
                "graders": [{"name": "five_verb_bullets"}]}]


def cli_env(prefect_api: str, home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": prefect_api, "LORAFLOW_HOME": str(home), **extra}


def loraflow(*args: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.app", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_pipeline(tmp_path: Path, **changes: object) -> Path:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            config.setdefault(section, {})[key] = value
        else:
            config[section] = value
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def paused_run_id(timeout_s: float = 60, flow_name: str | None = None) -> UUID:
    """The id of a flow run waiting in PAUSED (of `flow_name`'s flow when given), polling the current API."""
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=paused, flow_filter=FlowFilter(
                name=FlowFilterName(any_=[flow_name])) if flow_name else None)
            if runs:
                return runs[0].id
            time.sleep(0.2)
    raise AssertionError("no flow run paused for approval")
