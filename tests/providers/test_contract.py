"""The provider contract against the fake, and the OpenAI adapter on the loopback emulator and on a
transport-level stub (httpx2.MockTransport)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from emulator import EmulatorServer, FaultRule
from providers.fake import FakeProvider
from providers.openai.adapter import OpenAIOptions, OpenAIProvider
from tests.providers.contract import ProviderContract, contract_emulator
from tests.providers.openai.stub import OpenAIStub


class TestFakeProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> FakeProvider:
        return FakeProvider()

    def throttle_get_job(self, provider: FakeProvider) -> None:
        provider._transient_left["get_job"] = 1


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    yield from contract_emulator()


class TestOpenAIOnEmulator(ProviderContract):
    @pytest.fixture
    def provider(self, emulator: EmulatorServer) -> OpenAIProvider:
        client = openai.OpenAI(base_url=emulator.base_url, api_key="contract-key", max_retries=0)
        return OpenAIProvider(client, OpenAIOptions(file_poll_interval_s=0.02))

    def throttle_get_job(self, provider: OpenAIProvider) -> None:
        self._emulator.state.faults.add(FaultRule("GET /v1/fine_tuning/jobs/*", "rate_limit",
                                                  retry_after=0.05))

    @pytest.fixture(autouse=True)
    def _keep_emulator(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator


class TestOpenAIOnTransportStub(ProviderContract):
    @pytest.fixture
    def provider(self) -> OpenAIProvider:
        self._stub = OpenAIStub()
        return OpenAIProvider(self._stub.client(), OpenAIOptions(file_poll_interval_s=0.01))

    def throttle_get_job(self, provider: OpenAIProvider) -> None:
        self._stub.throttle_next = True
