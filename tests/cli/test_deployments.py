"""Deployments against a real `prefect server` on loopback: register, trigger through the API, complete.

Both execution paths: `loraflow deploy` + a process worker, and `loraflow serve` (one process).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cli.deployments import read_specs
from tests.conftest import QUICKSTART


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "LORAFLOW_HOME": str(home / "loraflow"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_WORKER_QUERY_SECONDS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--no-ui"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(env["PREFECT_API_URL"], process)
        yield env
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_healthy(api: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "prefect server exited"
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("prefect server did not become healthy")


def fast_pipeline(tmp_path: Path) -> dict:
    pipeline = read_specs()[0].parameters["pipeline"]
    return {**pipeline, "provider": {"name": "fake"}, "run_root": str(tmp_path / "runs"),
            "data": {**pipeline["data"], "path": str(QUICKSTART / "data" / "bullets.jsonl")},
            "poll": {"min_interval_s": 0.01, "max_interval_s": 0.05}}


def run_and_wait(env: dict[str, str], deployment: str, parameters: dict, timeout_s: float = 180) -> dict:
    """Trigger through the API from a clean process (the test process talks to its own harness)."""
    script = (
        "import json, sys, time\n"
        "from prefect.deployments import run_deployment\n"
        "from prefect.client.orchestration import get_client\n"
        f"run = run_deployment({deployment!r}, parameters=json.loads(sys.argv[1]), timeout={timeout_s})\n"
        "with get_client(sync_client=True) as client:\n"
        "    kinds = sorted({a.key for a in client.read_artifacts() if a.flow_run_id == run.id and a.key})\n"
        "print(json.dumps({'state': run.state.type.value, 'artifacts': kinds}))\n")
    import json

    done = subprocess.run([sys.executable, "-c", script, json.dumps(parameters)], env=env,
                          capture_output=True, text=True, timeout=timeout_s + 30, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def registered(env: dict[str, str]) -> dict[str, list]:
    """name -> [entrypoint, crons] of every deployment the API holds."""
    script = (
        "import json\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    print(json.dumps({d.name: [d.entrypoint, [s.schedule.cron for s in d.schedules]]\n"
        "                      for d in client.read_deployments()}))\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


EXPECTED_ARTIFACTS = ["data-report", "eval-comparison", "eval-report", "finetune-progress", "run-directory",
                      "training-health"]


def test_the_deployed_pipeline_is_the_quickstart_pipeline() -> None:
    quickstart = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text(encoding="utf-8"))
    quickstart["data"]["path"] = f"examples/quickstart/{quickstart['data']['path']}"
    for spec in read_specs():
        assert spec.parameters["pipeline"] == quickstart, spec.name


def test_deploy_then_a_worker_runs_a_triggered_flow(server: dict[str, str], tmp_path: Path) -> None:
    own_home = {**server, "LORAFLOW_HOME": str(tmp_path / "home")}  # the fake's jobs live in one process
    deployed = subprocess.run([sys.executable, "-m", "cli.app", "deploy"], env=server, capture_output=True,
                              text=True, timeout=120, check=False)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "registered finetune, quarterly-retrain, daily-monitor" in deployed.stdout
    assert registered(server) == {spec.name: [spec.entrypoint, [s.cron for s in spec.schedules]]
                                  for spec in read_specs()}
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool",
                               "loraflow-process", "--limit", "1"],
                              env=own_home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = run_and_wait(server, "finetune/finetune", {"pipeline": fast_pipeline(tmp_path)})
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result == {"state": "COMPLETED", "artifacts": EXPECTED_ARTIFACTS}
    assert list((tmp_path / "runs" / "quickstart").glob("*/decision.json"))


def test_serve_runs_a_triggered_flow_from_one_process(server: dict[str, str], tmp_path: Path) -> None:
    own_home = {**server, "LORAFLOW_HOME": str(tmp_path / "home")}
    serving = subprocess.Popen([sys.executable, "-m", "cli.app", "serve"], env=own_home,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # the runner registers its deployments before it polls
        result = run_and_wait(server, "finetune/finetune", {"pipeline": fast_pipeline(tmp_path)})
    finally:
        serving.terminate()
        serving.wait(timeout=30)
    assert result == {"state": "COMPLETED", "artifacts": EXPECTED_ARTIFACTS}


def test_deploy_to_the_kubernetes_pool_creates_it_and_runs_from_the_image(server: dict[str, str],
                                                                           tmp_path: Path) -> None:
    pytest.importorskip("prefect_kubernetes")
    spec = read_specs()[0]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump({"deployments": [{
        "name": "finetune-on-kubernetes", "entrypoint": spec.entrypoint, "parameters": spec.parameters,
        "work_pool": {"name": spec.work_pool}}]}))
    deployed = subprocess.run([sys.executable, "-m", "cli.app", "deploy", "--prefect-file", str(prefect_file),
                               "--pool", "loraflow-kubernetes", "--image", "ghcr.io/acme/loraflow:0.1.0"],
                              env=server, capture_output=True, text=True, timeout=120, check=False)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "prefect worker start --pool loraflow-kubernetes" in " ".join(deployed.stdout.split())
    script = (
        "import json\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    pool = client.read_work_pool('loraflow-kubernetes')\n"
        "    d = client.read_deployment_by_name('finetune/finetune-on-kubernetes')\n"
        "    print(json.dumps([pool.type, d.work_pool_name, d.entrypoint, d.pull_steps, d.job_variables,\n"
        "                      sorted(pool.base_job_template['variables']['properties'])]))\n")
    done = subprocess.run([sys.executable, "-c", script], env=server, capture_output=True, text=True,
                          timeout=60, check=True)
    kind, pool, entrypoint, pull_steps, job_variables, variables = json.loads(done.stdout.splitlines()[-1])
    assert (kind, pool, entrypoint) == ("kubernetes", "loraflow-kubernetes", "flows/finetune.py:finetune")
    assert not pull_steps  # the code is in the image: nothing to pull, no path of this machine
    assert job_variables == {"image": "ghcr.io/acme/loraflow:0.1.0",
                             "env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}  # cli/zombies.py
    assert {"gpus", "node_selector", "keys_secret", "shm_size"} <= set(variables)
