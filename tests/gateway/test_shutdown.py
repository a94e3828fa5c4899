"""`loraflow gateway` as a process: SIGTERM (how Kubernetes, systemd and Docker stop it) drains the buffered
events and exits 0; a restart replays what was spilled, once. An empty or short key is refused at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cli.deployments import REPO
from tasks.registry import Registry
from tasks.release.traffic import Outcome
from tests.cli.test_deployments import free_port

KEY = "sk-shutdown-0123456789"


def _start(tmp_path: Path, registry: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LORAFLOW_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-m", "cli.app", "gateway", "--port", str(port), "--registry",
                                registry, "--api-key", KEY, *extra], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the gateway did not start")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_drains_every_accepted_event_and_exits_0(tmp_path: Path, stop: signal.Signals) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = Registry.open(registry).engine
    process, url = _start(tmp_path, registry)
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=headers) as client:
        accepted = [client.post("/v1/feedback", json={"request_id": f"r{i}", "type": "thumbs_up"})
                    .json()["id"] for i in range(300)]
    process.send_signal(stop)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert "Traceback" not in output
    spill = tmp_path / "home" / "gateway-exposures.jsonl"
    spilled = spill.read_text().count("\n") if spill.exists() else 0
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Outcome)).scalar()
    assert stored + spilled == len(accepted) == 300
    if spilled:  # a restart replays the spill, and a second one finds nothing more to do
        again, _ = _start(tmp_path, registry)
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=60)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(Outcome)).scalar() == 300


@pytest.mark.parametrize(("keys", "says"), [("", "non-empty"), ("short", "shorter than 16")])
def test_an_empty_or_short_key_is_refused_at_start(tmp_path: Path, keys: str, says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.app", "gateway", "--port", str(free_port())], cwd=REPO,
                          env={**os.environ, "LORAFLOW_GATEWAY_KEYS": keys, "LORAFLOW_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and says in done.stderr and "Traceback" not in done.stderr + done.stdout
