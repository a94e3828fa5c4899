from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.states import Completed, Failed
from sqlalchemy import create_engine, text

from providers.base import JobState, PreparedDataset, TrainingSpec
from providers.errors import JobFailed, TransientProviderError
from providers.fake import FakeOptions, FakeProvider
from tasks.policy import retry_if_transient
from tasks.registry import Registry
from tasks.training.polling import PollConfig
from tasks.training.submit import submission_key, submit_job, upload_dataset
from tasks.training.wait import JobWatcher, poll_job
from tests.conftest import write_jsonl

SPEC = TrainingSpec(base_model="base-1", epochs=2)
TARGET = "fake"


def _last_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


DEAD_OWNER = f"{socket.gethostname()}:{_last_pid()}:gone"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'registry.db'}")


@pytest.fixture
def dataset(tmp_path: Path) -> PreparedDataset:
    line = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path = write_jsonl(tmp_path / "train.jsonl", [line] * 3)
    return PreparedDataset(train_path=path, sha256="d" * 64, train_examples=3)


def key() -> str:
    return submission_key(TARGET, {}, SPEC, "d" * 64)


class _Silent:
    def event(self, *args: object, **kwargs: object) -> None:
        pass

    def observed(self, *args: object) -> None:
        pass


def watcher(registry: Registry, sleeps: list[float] | None = None, **config: float) -> JobWatcher:
    """A watcher with no real sleeping: the clock advances by exactly what it sleeps."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds
        if sleeps is not None:
            sleeps.append(seconds)

    settings = {"min_interval_s": 7, "max_interval_s": 7, "jitter": 0, **config}
    return JobWatcher(PollConfig(**settings), registry, poll=poll_job.fn, sleep=sleep, clock=lambda: clock[0],
                      report=_Silent())


def calls(provider: FakeProvider, method: str) -> int:
    return sum(1 for name, _ in provider.calls if name == method)


def test_upload_happens_once_per_dataset(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider()
    first = upload_dataset.fn(provider, dataset, registry, TARGET)
    second = upload_dataset.fn(provider, dataset, registry, TARGET)
    assert first == second and calls(provider, "upload") == 1
    assert upload_dataset.fn(provider, dataset, registry, "fake@elsewhere") != first


def test_submit_reattaches_instead_of_creating_again(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider()
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    job = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    assert submit_job.fn(FakeProvider(), SPEC, data, registry, TARGET, key()) == job
    assert calls(provider, "create_job") == 1


def test_a_crash_around_create_is_resolved_by_asking_the_provider(registry: Registry,
                                                                   dataset: PreparedDataset) -> None:
    provider = FakeProvider()
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    # the earlier run recorded its intent, the provider created the job, then the process died
    registry.claim_job(idempotency_key=f"{key()[:40]}-a1", submission_key=key(), attempt=1, target=TARGET,
                       base_model=SPEC.base_model, owner=DEAD_OWNER)
    created = provider.create_job(SPEC, data, idempotency_key=f"{key()[:40]}-a1")
    assert submit_job.fn(provider, SPEC, data, registry, TARGET, key()) == created
    assert calls(provider, "create_job") == 1 and calls(provider, "find_job") == 1
    assert registry.latest_job(key()).job_id == created.job_id


def test_intent_without_a_remote_job_creates_it_with_the_same_key(registry: Registry,
                                                                   dataset: PreparedDataset) -> None:
    provider = FakeProvider()
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    registry.claim_job(idempotency_key="k-a1", submission_key=key(), attempt=1, target=TARGET,
                       base_model=SPEC.base_model, owner=DEAD_OWNER)
    job = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    assert job.idempotency_key == "k-a1" and calls(provider, "create_job") == 1


def test_a_failed_job_is_retried_as_a_new_attempt(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider(FakeOptions(states=[JobState.FAILED]))
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    first = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    with pytest.raises(JobFailed):
        watcher(registry).wait(provider, first)
    second = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    assert second.job_id != first.job_id and second.idempotency_key.endswith("-a2")


def test_wait_returns_the_model_and_records_states(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider()
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    job = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    sleeps: list[float] = []
    status = watcher(registry, sleeps).wait(provider, job)
    assert status.state is JobState.SUCCEEDED and status.model.job_id == job.job_id
    assert sleeps == [7, 7, 7]
    record = registry.latest_job(key())
    assert (record.state, record.model_id) == ("succeeded", status.model.model_id)


def test_failed_job_carries_the_provider_message(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider(FakeOptions(end_failed="line 3: invalid"))
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    job = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    with pytest.raises(JobFailed, match="line 3: invalid") as raised:
        watcher(registry).wait(provider, job)
    assert raised.value.state == "failed"


def test_a_job_past_max_wait_is_cancelled(registry: Registry, dataset: PreparedDataset) -> None:
    provider = FakeProvider(FakeOptions(stall=True))
    data = upload_dataset.fn(provider, dataset, registry, TARGET)
    job = submit_job.fn(provider, SPEC, data, registry, TARGET, key())
    with pytest.raises(JobFailed, match="max_wait_s"):
        watcher(registry, max_wait_s=20).wait(provider, job)
    assert calls(provider, "cancel") == 1
    assert provider.get_job(job).state is JobState.CANCELLED
    assert registry.latest_job(key()).state == "cancelled"


def test_only_transient_errors_are_retried() -> None:
    assert retry_if_transient(None, None, Failed(data=TransientProviderError("x", "throttled")))
    assert not retry_if_transient(None, None, Failed(data=JobFailed("j", "failed", "bad data")))
    assert not retry_if_transient(None, None, Completed(data=3))


def test_claims_wait_for_a_live_owner_and_take_over_from_a_dead_one(registry: Registry) -> None:
    alive_elsewhere = f"{socket.gethostname()}:1:other"  # pid 1 always runs
    assert registry.claim_upload("t", "sha", alive_elsewhere)
    assert not registry.claim_upload("t", "sha", "me")
    assert registry.claim_upload("t", "sha2", DEAD_OWNER)
    assert registry.claim_upload("t", "sha2", "me")
    assert registry.claim_job(idempotency_key="a", submission_key="s", attempt=1, target="t", base_model="b",
                              owner=alive_elsewhere)
    assert not registry.claim_job(idempotency_key="a", submission_key="s", attempt=1, target="t",
                                  base_model="b", owner="me")
    assert not registry.take_over_job(registry.latest_job("s"), "me")


def test_an_older_registry_gains_the_new_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as connection:
        connection.execute(text("CREATE TABLE uploads (id INTEGER PRIMARY KEY, target VARCHAR(512), "
                                "dataset_sha256 VARCHAR(64), train_file_id VARCHAR(256), "
                                "validation_file_id VARCHAR(256), started_at DATETIME, "
                                "finished_at DATETIME)"))
    registry = Registry(url)
    assert registry.claim_upload("t", "sha", "me")
