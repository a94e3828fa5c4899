"""The provider contract against the Vertex adapter, through the real google-genai and google-cloud-storage
SDKs: on the loopback emulator (fixed bearer token: no call to Google for credentials) and on a
transport-level stub (an injected httpx client on a respx router, an injected requests session)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("google.genai", reason="the vertex extra is not installed")

from emulator import EmulatorServer, FaultRule
from providers.base import PreparedDataset, TrainingSpec
from providers.vertex.adapter import VertexProvider, idempotency_tag
from tests.providers.contract import ProviderContract, contract_emulator
from tests.providers.vertex.stub import VertexStub

SPEC = TrainingSpec(base_model="gemini-3.5-flash", epochs=1, seed=1, suffix="contract", lora_r=4)
# one attempt per request, so an injected 429 reaches the adapter instead of the SDK's retry loop
NO_RETRIES = {"retry_attempts": 1, "retry_initial_delay_s": 0.01, "gcs_retry_timeout_s": 1}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    yield from contract_emulator(finishing_s=0.05)


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


class TestVertexOnTransportStub(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self) -> VertexProvider:
        self._stub = VertexStub()
        return self._stub.provider()

    def throttle_get_job(self, provider: VertexProvider) -> None:
        self._stub.throttle_next = True

    def test_create_sends_the_documented_tuning_request(self, provider: VertexProvider,
                                                        dataset: PreparedDataset) -> None:
        data = provider.upload(dataset)
        provider.create_job(SPEC, data, idempotency_key="shape")
        (body,) = self._stub.bodies
        tuning = body["supervisedTuningSpec"]
        assert body["baseModel"] == SPEC.base_model
        assert tuning["trainingDatasetUri"] == data.train_file_id
        assert tuning["validationDatasetUri"] == data.validation_file_id
        assert tuning["hyperParameters"] == {"epochCount": 1, "adapterSize": "ADAPTER_SIZE_FOUR"}
        assert body["labels"] == {"loraflow-key": idempotency_tag("shape")}
        uploaded = self._stub.objects[data.train_file_id].decode().splitlines()
        assert len(uploaded) == 40 and all("contents" in json.loads(line) for line in uploaded)

    def test_an_upload_already_in_the_bucket_is_kept(self, provider: VertexProvider,
                                                     dataset: PreparedDataset) -> None:
        first = provider.upload(dataset)
        assert provider.upload(dataset) == first
