"""The `loraflow` command: the quickstart from any directory, one-line errors, the emulator command."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.conftest import QUICKSTART
from tests.flows.pipelines import cli_env, loraflow, write_pipeline

runner = CliRunner()


def test_the_emulator_command_serves_until_stopped_and_prints_the_variable_to_set(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cli.app", "emulator", "--port", str(port),
                               "--state-dir", str(tmp_path / "emu")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health",
                                            timeout=1) as response:
                    assert json.loads(response.read())["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the emulator did not answer within 30 s")
        listing = urllib.request.Request(f"http://127.0.0.1:{port}/v1/files",
                                         headers={"Authorization": "Bearer k"})
        with urllib.request.urlopen(listing, timeout=5) as response:
            assert json.loads(response.read())["object"] == "list"
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=10)
    assert out.splitlines()[0] == f"LORAFLOW_EMULATOR_URL=http://127.0.0.1:{port}"
    assert (tmp_path / "emu" / "state.json").is_file()


def test_config_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    assert "provider" in json.loads(result.stdout)["properties"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"provider__name": "sagemaker"},
     ("provider.name: unknown provider 'sagemaker'; allowed values: azure_openai, bedrock, fake, local, "
      "openai, together, vertex")),
    ({"data__path": "nowhere.jsonl"}, "data.path: no such file"),
    ({"training__lora_rank": 8}, "training.lora_rank: unknown key"),
])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path: Path, changes: dict, message: str) -> None:
    result = runner.invoke(app, ["run", str(write_pipeline(tmp_path, **changes))])
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_data_inside_the_flow_is_one_line_without_traceback(tmp_path: Path, prefect_api: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    path = write_pipeline(tmp_path, data__path=str(data), provider={"name": "fake"})
    result = loraflow("run", str(path), env=cli_env(prefect_api, tmp_path / "home"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    expected = (f"error: {data}:1: no_final_assistant: the last message must come from the assistant "
                "(+2 more; see the data report)")
    assert result.stderr.strip().splitlines() == [expected]


def test_quickstart_runs_from_any_directory(tmp_path: Path, prefect_api: str, loraflow_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", str(QUICKSTART / "pipeline.yaml")])
    assert result.exit_code == 0, result.output
    assert "ACCEPT" in result.stdout and "five_verb_bullets" in result.stdout
    runs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(runs) == 1 and (runs[0] / "decision.json").is_file()
