"""The emulator the CLI starts for a rehearsal: only when a pipeline asks for it, only while commands use
it, one for every command on a LORAFLOW_HOME, and never silently in place of one the environment names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.deployments import DeploymentSpec, endpoints
from cli.rehearsal import emulator_for
from emulator.ownership import owned
from providers.errors import ConfigError
from tasks.connection import EMULATOR_URL, emulator_apis
from tests.conftest import QUICKSTART
from tests.flows.pipelines import cli_env


def test_a_pipeline_on_a_vendor_endpoint_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMULATOR_URL, raising=False)
    with emulator_for(None, "https://api.example.test/v1"):
        assert EMULATOR_URL not in os.environ


def test_an_emulator_endpoint_gets_one_for_the_block_only_even_when_it_fails(
        loraflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMULATOR_URL, raising=False)
    with pytest.raises(RuntimeError, match="the block failed"), emulator_for(None, "emulator"):
        assert "openai" in emulator_apis(os.environ[EMULATOR_URL], advice="")
        assert (loraflow_home / "emulator").is_dir()
        raise RuntimeError("the block failed")
    assert EMULATOR_URL not in os.environ


def test_a_named_emulator_is_used_as_it_is(emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with emulator_for("emulator"):
        assert os.environ[EMULATOR_URL] == emulator.url
    assert os.environ[EMULATOR_URL] == emulator.url


def test_a_named_emulator_that_does_not_answer_is_one_line_not_a_second_emulator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(EMULATOR_URL, url)
    with pytest.raises(ConfigError, match=rf"^{EMULATOR_URL}={url} names no running emulator .*unset the "
                                          "variable"), emulator_for("emulator"):
        pytest.fail("the block must not run")


def _spec(parameters: dict) -> DeploymentSpec:
    return DeploymentSpec(name="d", entrypoint="flows/finetune.py:finetune", parameters=parameters,
                          schedules=[], description="", tags=[], concurrency_limit=None, work_pool="p")


def test_deployment_endpoints_include_the_judge_and_survive_malformed_parameters() -> None:
    specs = [_spec({"pipeline": {"provider": {"endpoint": "https://x.test"},
                                 "eval": {"judge": {"endpoint": "emulator"}}}}),
             _spec({"pipeline": ["not", "a", "mapping"]}),
             _spec({"pipeline": {"provider": "openai", "eval": {"judge": None}}}),
             _spec({})]
    assert endpoints(specs) == ["https://x.test", "emulator", None, None, None, None, None, None]


@pytest.mark.timeout(900)
def test_three_concurrent_quickstarts_share_one_emulator_one_upload_and_one_job(tmp_path: Path,
                                                                               prefect_api: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in cli_env(prefect_api, home).items() if k != EMULATOR_URL}
    command = [sys.executable, "-m", "cli.app", "run", str(QUICKSTART / "pipeline.yaml")]
    runs = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=840)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], "\n\n".join(outputs)
    assert all("decision (rules-v2)" in output and "ACCEPT" in output for output in outputs)
    assert sum("started the loopback emulator" in output for output in outputs) == 1
    assert sum("sharing the loopback emulator" in output for output in outputs) == 2
    counters = json.loads((home / "emulator" / "state.json").read_text())["counters"]
    assert (counters["files_created"], counters["jobs_created"]) == (2, 1), counters
    assert len(list((tmp_path / "runs" / "quickstart").iterdir())) == 3
    deadline = time.monotonic() + 15
    while owned(home / "emulator") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not owned(home / "emulator"), "the emulator outlived its last run"
