"""The provider contract against the Bedrock adapter through the real boto3: on the loopback emulator (one
endpoint_url for s3, bedrock and bedrock-runtime), and a smoke run on moto's Bedrock mock, which no one
here wrote (moto resolves jobs by name only and never advances them, so the test moves them by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("boto3", reason="the bedrock extra is not installed")

from emulator import EmulatorServer, FaultRule
from providers.base import JobState, PreparedDataset, TrainingSpec
from providers.bedrock.adapter import BedrockProvider
from providers.bedrock.client import BedrockOptions, job_name
from providers.errors import PermanentProviderError
from tests.providers.bedrock.stub import BedrockStub
from tests.providers.contract import ProviderContract, contract_emulator, finish

NOVA = "amazon.nova-lite-v1:0:300k"
SPEC = TrainingSpec(base_model=NOVA, epochs=1, seed=1, suffix="contract")
OPTIONS = {"bucket": "loraflow-ft", "role_arn": "arn:aws:iam::123456789012:role/BedrockFT", "max_attempts": 1,
           "serve_poll_s": 0.02}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    yield from contract_emulator(finishing_s=0.05)


class TestBedrockOnEmulator(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self, emulator: EmulatorServer) -> BedrockProvider:
        return BedrockProvider.from_options(OPTIONS, base_url=emulator.base_url_for("bedrock"),
                                            api_key="contract-key")

    def throttle_get_job(self, provider: BedrockProvider) -> None:
        self._emulator.state.faults.add(FaultRule("GET /bedrock/model-customization-jobs/*", "rate_limit",
                                                  retry_after=0.05))

    @pytest.fixture(autouse=True)
    def _keep_emulator(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator


def test_the_emulator_refuses_a_request_signed_with_another_key(emulator: EmulatorServer) -> None:
    provider = BedrockProvider.from_options(OPTIONS, base_url=emulator.base_url_for("bedrock"),
                                            api_key="wrong")
    with pytest.raises(PermanentProviderError, match="UnrecognizedClientException"):
        provider.find_job("anything")


def test_a_job_whose_data_is_not_in_its_family_format_fails_blaming_the_data(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    provider = BedrockProvider.from_options(OPTIONS, base_url=emulator.base_url_for("bedrock"),
                                            api_key="contract-key")
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, '
                     '{"role": "assistant", "content": "yo"}]}\n')
    data = provider.upload(PreparedDataset(train_path=train, sha256="d" * 64, train_examples=1))
    # overwrite the Converse object with a line in the prompt/completion format
    provider.s3.put_object(Bucket="loraflow-ft", Key=data.train_file_id.removeprefix("s3://loraflow-ft/")
                           + "-converse.jsonl", Body=b'{"prompt": "hi", "completion": "yo"}\n')
    job = provider.create_job(SPEC, data, idempotency_key="bad-format")
    status = finish(provider, job)
    assert status.state is JobState.FAILED and status.data_at_fault
    assert "converse format" in status.message


@pytest.fixture
def moto_provider(tmp_path: Path) -> Iterator[BedrockProvider]:
    moto = pytest.importorskip("moto", reason="moto is not installed")
    import boto3

    with moto.mock_aws():
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        s3 = session.client("s3")
        s3.create_bucket(Bucket=OPTIONS["bucket"])
        yield BedrockProvider(s3, session.client("bedrock"), session.client("bedrock-runtime"),
                              BedrockOptions(**OPTIONS))


def test_smoke_on_moto_by_job_name(moto_provider: BedrockProvider, tmp_path: Path) -> None:
    from moto.bedrock.models import bedrock_backends

    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, '
                     '{"role": "assistant", "content": "yo"}]}\n')
    data = moto_provider.upload(PreparedDataset(train_path=train, sha256="e" * 64, train_examples=1))
    job = moto_provider.create_job(SPEC, data, idempotency_key="moto-run")
    assert job.job_id == job_name("moto-run")
    assert moto_provider.create_job(SPEC, data, idempotency_key="moto-run") == job  # a retried create
    assert moto_provider.get_job(job).state is JobState.RUNNING
    assert moto_provider.find_job("moto-run") == job and moto_provider.find_job("moto-other") is None

    bedrock_backends["123456789012"]["us-east-1"].model_customization_jobs[job.job_id].status = "Completed"
    done = moto_provider.get_job(job)
    assert done.state is JobState.SUCCEEDED and done.model is not None
    assert done.model.model_id.startswith("arn:aws:bedrock:us-east-1:123456789012:custom-model/")
    assert done.model.base_model == NOVA

    other = moto_provider.create_job(SPEC, data, idempotency_key="moto-cancel")
    moto_provider.cancel(other)
    assert moto_provider.get_job(other).state is JobState.CANCELLED
    moto_provider.cancel(other)  # a no-op once it ended


class TestBedrockOnStubber(ProviderContract):
    spec = SPEC

    @pytest.fixture
    def provider(self) -> BedrockProvider:
        self._stub = BedrockStub()
        return self._stub.provider(BedrockOptions(**OPTIONS))

    def throttle_get_job(self, provider: BedrockProvider) -> None:
        self._stub.throttle_next = True
