"""The provider contract: one test class every provider passes (fsspec-style shared tests).

A provider opts in with a subclass that supplies the `provider` fixture and `throttle_get_job`, which
makes the provider's next get_job fail the way that vendor throttles, and sets `spec` when the default
base model is not one of that vendor's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import EmulatorServer, Timeline
from providers.base import (
    Decoding,
    JobRef,
    JobState,
    JobStatus,
    ModelRef,
    PreparedDataset,
    Provider,
    ServesModels,
    TrainingSpec,
)
from providers.errors import ConfigError, ProviderError, TransientProviderError
from tests.conftest import QUICKSTART


def contract_emulator(finishing_s: float = 0.0) -> Iterator[EmulatorServer]:
    """The body of a module's `emulator` fixture: the loopback emulator on a timeline where a job takes a
    fraction of a second, with the key the contract tests use."""
    fast = Timeline(validating_s=0.05, queued_s=0.05, steps=5, step_s=0.05, finishing_s=finishing_s)
    with EmulatorServer(api_key="contract-key", timeline=fast) as server:
        yield server


SPEC = TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=1, seed=1, suffix="contract")


def finish(provider: Provider, job: JobRef, *, polls: int = 400) -> JobStatus:
    for _ in range(polls):
        status = provider.get_job(job)
        assert isinstance(status.state, JobState)
        if status.state.is_terminal:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job.job_id} did not end after {polls} polls")


class ProviderContract:
    spec: TrainingSpec = SPEC

    @pytest.fixture
    def provider(self) -> Provider:
        raise NotImplementedError

    def throttle_get_job(self, provider: Provider) -> None:
        raise NotImplementedError

    @pytest.fixture
    def dataset(self, tmp_path: Path) -> PreparedDataset:
        lines = (QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        train, held_out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
        train.write_text("".join(lines[:40]), encoding="utf-8")
        held_out.write_text("".join(lines[40:50]), encoding="utf-8")
        return PreparedDataset(train_path=train, eval_path=held_out, sha256="c" * 64, train_examples=40,
                               eval_examples=10)

    def test_is_a_provider(self, provider: Provider) -> None:
        assert isinstance(provider, Provider)
        assert all(isinstance(warning, str) for warning in provider.check_spec(self.spec))

    def test_check_spec_refuses_out_of_range_knobs(self, provider: Provider) -> None:
        with pytest.raises(ConfigError, match="training.epochs"):
            provider.check_spec(self.spec.model_copy(update={"epochs": 100}))

    def test_a_job_runs_to_a_tuned_model(self, provider: Provider, dataset: PreparedDataset) -> None:
        data = provider.upload(dataset)
        assert data.sha256 == dataset.sha256 and data.provider == provider.name
        job = provider.create_job(self.spec, data, idempotency_key="contract-run")
        status = finish(provider, job)
        assert status.state is JobState.SUCCEEDED
        assert status.model is not None and status.model.is_tuned
        assert status.model.base_model == self.spec.base_model

    def test_find_job_recovers_a_job_by_its_key(self, provider: Provider, dataset: PreparedDataset) -> None:
        data = provider.upload(dataset)
        job = provider.create_job(self.spec, data, idempotency_key="contract-find")
        provider.create_job(self.spec, data, idempotency_key="contract-other")
        assert provider.find_job("contract-find") == job
        assert provider.find_job("contract-never-used") is None

    def test_cancel_stops_a_job_and_is_a_noop_once_it_ended(self, provider: Provider,
                                                            dataset: PreparedDataset) -> None:
        job = provider.create_job(self.spec, provider.upload(dataset), idempotency_key="contract-cancel")
        provider.cancel(job)
        assert finish(provider, job).state is JobState.CANCELLED
        provider.cancel(job)

    def test_unknown_job_is_a_provider_error(self, provider: Provider) -> None:
        with pytest.raises(ProviderError):
            provider.get_job(JobRef(provider=provider.name, job_id="no-such-job"))

    def test_throttling_is_transient(self, provider: Provider, dataset: PreparedDataset) -> None:
        job = provider.create_job(self.spec, provider.upload(dataset), idempotency_key="contract-throttle")
        self.throttle_get_job(provider)
        with pytest.raises(TransientProviderError):
            provider.get_job(job)
        assert isinstance(provider.get_job(job).state, JobState)

    def test_tuned_model_answers_like_its_data_and_base_does_not(self, provider: Provider,
                                                                 dataset: PreparedDataset) -> None:
        job = provider.create_job(self.spec, provider.upload(dataset), idempotency_key="contract-infer")
        tuned = finish(provider, job).model
        if isinstance(provider, ServesModels):
            tuned = provider.serve(tuned, name="contract-infer")
        first = dataset.train_path.read_text(encoding="utf-8").splitlines()[0]
        *prompt, answer = json.loads(first)["messages"]
        decoding = Decoding(max_tokens=256)
        assert provider.infer(tuned, prompt, decoding).text == answer["content"]
        base = ModelRef(provider=provider.name, model_id=self.spec.base_model,
                        base_model=self.spec.base_model)
        completion = provider.infer(base, prompt, decoding)
        assert completion.text and completion.text != answer["content"]
