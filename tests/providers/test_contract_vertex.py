"""The provider contract against the Vertex adapter, through the real google-genai and google-cloud-storage
SDKs on the loopback emulator (fixed bearer token: no call to Google for credentials)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("google.genai", reason="the vertex extra is not installed")

from providers.base import TrainingSpec
from providers.emulator import EmulatorServer, FaultRule, Timeline
from providers.vertex import VertexProvider
from tests.providers.contract import ProviderContract

SPEC = TrainingSpec(base_model="gemini-2.5-flash", epochs=1, seed=1, suffix="contract", lora_r=4)
# one attempt per request, so an injected 429 reaches the adapter instead of the SDK's retry loop
NO_RETRIES = {"retry_attempts": 1, "retry_initial_delay_s": 0.01, "gcs_retry_timeout_s": 1}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    fast = Timeline(validating_s=0.05, queued_s=0.05, steps=5, step_s=0.05, finishing_s=0.05)
    with EmulatorServer(api_key="contract-key", timeline=fast) as server:
        yield server


class TestVertexOnEmulator(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self, emulator: EmulatorServer) -> VertexProvider:
        return VertexProvider.from_options(NO_RETRIES, base_url=emulator.base_url_for("vertex"),
                                           api_key="contract-key")

    def throttle_get_job(self, provider: VertexProvider) -> None:
        self._emulator.state.faults.add(FaultRule("GET /vertex/v1beta1/projects/*/tuningJobs/*", "rate_limit",
                                                  retry_after=0.05))

    @pytest.fixture(autouse=True)
    def _keep_emulator(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator
