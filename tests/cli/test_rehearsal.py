"""The emulator the CLI starts for a rehearsal: only when a pipeline asks for it, only for the command's
lifetime, and never silently in place of one the environment names."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from cli.deployments import DeploymentSpec, endpoints
from cli.rehearsal import emulator_for
from providers.errors import ConfigError
from tasks.connection import EMULATOR_URL, emulator_apis


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
