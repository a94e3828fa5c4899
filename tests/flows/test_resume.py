"""Crash and concurrency: a killed run re-run, and three runs at once, pay for one upload and one job.

`loraflow run` runs in a subprocess against an emulator in this process (it outlives the kill), with the
session's Prefect server. The kill lands when the emulator's counters show the pipeline at a boundary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator import EmulatorServer, FaultRule, Timeline
from tests.flows.pipelines import TARGET_ONLY, cli_env, loraflow, write_pipeline

KEY = "resume-key"
ITEMS = 20
CONCURRENCY = 4  # eval.concurrency's default
Counters = dict

BOUNDARIES: dict[str, tuple[list[FaultRule], Callable[[Counters], bool]]] = {
    # the create call hangs for a while, so the kill lands between the upload and the job
    "after-upload": ([FaultRule("POST /v1/fine_tuning/jobs", "slow", delay_s=2.0)],
                     lambda c: c["files_created"] == 2),
    "after-create": ([], lambda c: c["jobs_created"] == 1),
    "mid-poll": ([], lambda c: c["requests"].get("GET /v1/fine_tuning/jobs/{job_id}", 0) >= 2),
    "mid-eval": ([], lambda c: c["completions"] >= ITEMS // 2),
}


def pipeline(tmp_path: Path, emulator: EmulatorServer, **changes: object) -> Path:
    return write_pipeline(tmp_path, provider={"name": "openai", "endpoint": emulator.base_url},
                          eval__max_items=ITEMS, eval__suites=TARGET_ONLY,
                          poll={"min_interval_s": 0.2, "max_interval_s": 1, "max_wait_s": 120},
                          **changes)


def start(path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.app", "run", str(path)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(process: subprocess.Popen, emulator: EmulatorServer,
              reached: Callable[[Counters], bool]) -> None:
    deadline = time.monotonic() + 120
    while not reached(emulator.state.counters):
        assert process.poll() is None, f"the run ended before the boundary:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "the boundary was never reached"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_a_rerun_after_a_kill_pays_for_one_upload_and_one_job(boundary: str, tmp_path: Path,
                                                              prefect_api: str) -> None:
    faults, reached = BOUNDARIES[boundary]
    timeline = Timeline(validating_s=1.0, queued_s=0.5, steps=10, step_s=0.2)
    with EmulatorServer(api_key=KEY, timeline=timeline) as emulator:
        emulator.state.faults.add(*faults)
        path, env = pipeline(tmp_path, emulator), cli_env(prefect_api, tmp_path / "home", OPENAI_API_KEY=KEY)
        kill_when(start(path, env, tmp_path), emulator, reached)
        emulator.state.faults.clear()
        answered_before = emulator.state.counters["completions"]

        rerun = loraflow("run", str(path), env=env, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        counters = emulator.state.counters
        assert (counters["files_created"], counters["jobs_created"]) == (2, 1), counters
        assert "ACCEPT" in rerun.stdout
        usage = _evaluation_usage(tmp_path)
        assert counters["completions"] - answered_before == usage["calls"]
        # a killed evaluation is paid once: only answers in flight at the kill
        # (at most eval.concurrency) twice
        assert counters["completions"] <= usage["calls"] + usage["cache_hits"] + CONCURRENCY
        assert (usage["cache_hits"] > 0) == (boundary == "mid-eval")


def _evaluation_usage(root: Path) -> dict[str, int]:
    manifests = [json.loads(m.read_text()) for m in (root / "runs").glob("*/*/manifest.json")]
    finished = [m for m in manifests if "evaluation" in m]
    assert len(finished) == 1, "exactly the re-run evaluated"
    return finished[0]["evaluation"]["usage"]


@pytest.mark.skipif(not os.environ.get("LORAFLOW_TEST_POSTGRES_URL"),
                    reason="needs the PostgreSQL server that .ci/run starts (LORAFLOW_TEST_POSTGRES_URL)")
def test_three_concurrent_runs_share_one_upload_and_one_job(tmp_path: Path, prefect_api: str) -> None:
    schema = f"lf{os.getpid()}"
    url = _fresh_schema(os.environ["LORAFLOW_TEST_POSTGRES_URL"], schema)
    with EmulatorServer(api_key=KEY, timeline=Timeline(validating_s=1.0, queued_s=0.5, steps=10,
                                                       step_s=0.2)) as emulator:
        path = pipeline(tmp_path, emulator, registry_url=url)
        env = cli_env(prefect_api, tmp_path / "home", OPENAI_API_KEY=KEY)
        runs = [start(path, env, tmp_path) for _ in range(3)]
        outputs = [run.communicate(timeout=240)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], "\n\n".join(outputs)
        assert all("ACCEPT" in output for output in outputs)
        counters = emulator.state.counters
        assert (counters["files_created"], counters["jobs_created"]) == (2, 1), counters


def _fresh_schema(url: str, schema: str) -> str:
    from sqlalchemy import create_engine, text

    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{url}?options=-csearch_path%3D{schema}"
