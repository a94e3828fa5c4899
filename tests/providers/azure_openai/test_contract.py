"""The provider contract against the Azure OpenAI adapter, through the openai SDK's AzureOpenAI client on the
loopback emulator (data plane under /azure/openai, deployments through its management API)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import EmulatorServer, FaultRule
from providers.azure_openai.adapter import AzureOpenAIProvider
from providers.base import ServesModels
from tests.providers.contract import ProviderContract, contract_emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    yield from contract_emulator()


class TestAzureOpenAIOnEmulator(ProviderContract):
    @pytest.fixture
    def provider(self, emulator: EmulatorServer) -> AzureOpenAIProvider:
        options = {"file_poll_interval_s": 0.02, "serve_poll_s": 0.02, "max_retries": 0}
        return AzureOpenAIProvider.from_options(options, base_url=emulator.base_url_for("azure_openai"),
                                                api_key="contract-key")

    def throttle_get_job(self, provider: AzureOpenAIProvider) -> None:
        self._emulator.state.faults.add(FaultRule("GET /azure/openai/fine_tuning/jobs/*", "rate_limit",
                                                  retry_after=0.05))

    @pytest.fixture(autouse=True)
    def _keep_emulator(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator

    def test_serves_through_a_deployment(self, provider: AzureOpenAIProvider) -> None:
        assert isinstance(provider, ServesModels)
