"""The provider contract against the Together adapter, through the real SDK: on the loopback emulator and
on a transport-level stub (respx)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

together = pytest.importorskip("together", reason="the together extra is not installed")

from emulator import EmulatorServer, FaultRule
from providers.base import TrainingSpec
from providers.together.adapter import TogetherOptions, TogetherProvider
from tests.providers.contract import ProviderContract, contract_emulator
from tests.providers.together.stub import TogetherStub

LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
SPEC = TrainingSpec(base_model=LLAMA, epochs=1, seed=1, suffix="contract", lora_r=16, lora_alpha=32)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    yield from contract_emulator(finishing_s=0.05)


class TestTogetherOnEmulator(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self, emulator: EmulatorServer) -> TogetherProvider:
        client = together.Together(base_url=emulator.base_url_for("together"), api_key="contract-key",
                                   max_retries=0)
        return TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.02))

    def throttle_get_job(self, provider: TogetherProvider) -> None:
        self._emulator.state.faults.add(FaultRule("GET /together/v1/fine-tunes/*", "rate_limit",
                                                  retry_after=0.05))

    @pytest.fixture(autouse=True)
    def _keep_emulator(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator


class TestTogetherOnTransportStub(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self) -> TogetherProvider:
        self._stub = TogetherStub()
        return TogetherProvider(self._stub.client(), TogetherOptions(file_poll_interval_s=0.01))

    def throttle_get_job(self, provider: TogetherProvider) -> None:
        self._stub.throttle_next = True
