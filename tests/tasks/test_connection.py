"""Opening a provider at its endpoint: the emulator is found through LORAFLOW_EMULATOR_URL, never started
here."""

from __future__ import annotations

import socket

import pytest

from providers.errors import ConfigError
from tasks.connection import ProviderConfig, open_chat_model, open_provider


def test_an_emulator_endpoint_without_a_running_emulator_says_how_to_start_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORAFLOW_EMULATOR_URL", raising=False)
    with pytest.raises(ConfigError,
                       match=r"^provider.endpoint: emulator: no loopback emulator runs .*loraflow emulator "
                             r"--state-dir \S+/emulator.*LORAFLOW_EMULATOR_URL"):
        open_provider(ProviderConfig(name="openai", endpoint="emulator"))


def test_an_emulator_url_where_nothing_answers_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LORAFLOW_EMULATOR_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(ConfigError,
                       match=rf"LORAFLOW_EMULATOR_URL=http://127.0.0.1:{port} names no running emulator "
                             r".*loraflow emulator"):
        open_provider(ProviderConfig(name="openai", endpoint="emulator"))


def test_the_emulator_says_where_each_api_lives(emulator) -> None:
    provider = open_provider(ProviderConfig(name="together", endpoint="emulator"))
    assert str(provider.client.base_url).rstrip("/").startswith(f"{emulator.url}/together")
    with pytest.raises(ConfigError,
                       match="^eval.judge.endpoint: the emulator does not speak 'anthropic'; it emulates: "
                             "openai, together"):
        open_chat_model("anthropic", {}, "emulator", where="eval.judge.api_key_secret",
                        endpoint_where="eval.judge.endpoint")


def test_a_judge_on_the_emulator_without_one_running_names_its_own_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORAFLOW_EMULATOR_URL", raising=False)
    with pytest.raises(ConfigError, match="^eval.judge.endpoint: emulator: no loopback emulator runs"):
        open_chat_model("openai", {}, "emulator", where="eval.judge.api_key_secret",
                        endpoint_where="eval.judge.endpoint")
