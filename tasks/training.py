"""Training: upload once, submit once per idempotency key, wait for the job to end.

Nothing is paid twice. Uploads are keyed by (provider, prepared-data sha256); jobs by a submission key
over data + spec + provider options + provider + base model. Both are recorded before and after the
remote call. A job record with no job id means the run died around `create_job`: the provider is asked
(`find_job`) before anything is created again. A job that ended FAILED or CANCELLED is retried as a new
attempt with its own key.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import task

from providers.base import DatasetRef, JobRef, JobState, JobStatus, PreparedDataset, Provider, TrainingSpec
from providers.errors import JobFailed, UnexpectedProviderResponse
from tasks.policy import PROVIDER_CALL
from tasks.progress import milestone, progress
from tasks.registry import Registry

_RETRYABLE_END = (JobState.FAILED, JobState.CANCELLED)


def submission_key(target: str, options: dict[str, Any], spec: TrainingSpec, dataset_sha256: str) -> str:
    """sha256 over everything that makes two submissions the same training run.

    `target` names the provider and its endpoint, so a rehearsal on the emulator never matches a real job.
    """
    identity = {"target": target, "options": options, "spec": spec.model_dump(mode="json"),
                "data": dataset_sha256}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@task(name="check-spec", **PROVIDER_CALL)
def check_spec(provider: Provider, spec: TrainingSpec) -> list[str]:
    warnings = provider.check_spec(spec)
    for warning in warnings:
        milestone("submit", "warning: %s", warning)
    return warnings


@task(name="upload", **PROVIDER_CALL)
def upload_dataset(provider: Provider, data: PreparedDataset, registry: Registry, target: str) -> DatasetRef:
    existing = registry.finished_upload(target, data.sha256)
    if existing is not None:
        milestone("upload", "reusing upload %s of dataset %s", existing.train_file_id, data.sha256[:12])
        return existing
    registry.upload_started(target, data.sha256)
    ref = provider.upload(data)
    registry.upload_finished(target, ref)
    milestone("upload", "uploaded dataset %s as %s", data.sha256[:12], ref.train_file_id)
    return ref


@task(name="submit", **PROVIDER_CALL)
def submit_job(provider: Provider, spec: TrainingSpec, data: DatasetRef, registry: Registry, target: str,
               key: str) -> JobRef:
    record = registry.latest_job(key)
    if record is not None and record.job_id is None:
        found = provider.find_job(record.idempotency_key)
        if found is not None:
            registry.job_created(found)
            milestone("submit", "found job %s created by an interrupted run", found.job_id)
            return found
        idempotency_key, attempt = record.idempotency_key, record.attempt
    elif record is not None and JobState(record.state or "pending") not in _RETRYABLE_END:
        milestone("submit", "re-attaching to job %s (%s)", record.job_id, record.state or "submitted")
        return JobRef(provider=provider.name, job_id=record.job_id, idempotency_key=record.idempotency_key)
    else:
        attempt = record.attempt + 1 if record is not None else 1
        idempotency_key = f"{key[:40]}-a{attempt}"
        registry.job_intended(idempotency_key=idempotency_key, submission_key=key, attempt=attempt,
                              target=target, base_model=spec.base_model)
    job = provider.create_job(spec, data, idempotency_key=idempotency_key)
    registry.job_created(job)
    milestone("submit", "created job %s (attempt %d)", job.job_id, attempt)
    return job


# Each poll is its own short task so a transient error retries one observation, not the whole wait;
# NO_CACHE (in PROVIDER_CALL) because a poll must always ask the provider afresh.
@task(name="poll", **PROVIDER_CALL)
def poll_job(provider: Provider, job: JobRef) -> JobStatus:
    return provider.get_job(job)


@dataclass(frozen=True)
class WaitPolicy:
    interval_s: float
    max_wait_s: float


def wait_for_job(provider: Provider, job: JobRef, policy: WaitPolicy, registry: Registry, *,
                 poll: Callable[[Provider, JobRef], JobStatus] = poll_job,
                 sleep: Callable[[float], None] = time.sleep) -> JobStatus:
    """Poll until the job ends. Returns the SUCCEEDED status (with its model); raises JobFailed otherwise.

    Past `max_wait_s` the job is cancelled, so a stuck job stops billing.
    """
    deadline = time.monotonic() + policy.max_wait_s
    last_state: JobState | None = None
    while True:
        status = poll(provider, job)
        if status.state is not last_state:
            registry.job_observed(job, status.state, status.model.model_id if status.model else None)
            last_state = status.state
        _report(status)
        if status.state.is_terminal:
            return _outcome(status)
        if time.monotonic() >= deadline:
            provider.cancel(job)
            registry.job_observed(job, JobState.CANCELLED)
            raise JobFailed(job.job_id, JobState.CANCELLED.value,
                            f"still {status.state.value} after poll.max_wait_s={policy.max_wait_s:g}; "
                            "loraflow cancelled it")
        sleep(policy.interval_s)


def _report(status: JobStatus) -> None:
    loss = status.metrics.get("train_loss")
    detail = f" loss={loss:.3f}" if loss is not None else ""
    if status.step is not None:
        progress("train", status.step, status.total_steps, "%s step %s/%s%s", status.state.value, status.step,
                 status.total_steps or "?", detail)
    else:
        progress("train", 0, status.total_steps, "%s (%s)", status.state.value, status.vendor_state)


def _outcome(status: JobStatus) -> JobStatus:
    if status.state is not JobState.SUCCEEDED:
        raise JobFailed(status.job.job_id, status.state.value, status.message, data_at_fault=status.data_at_fault)
    if status.model is None:
        raise UnexpectedProviderResponse(status.job.provider,
                                         f"job {status.job.job_id} succeeded without a model id")
    milestone("train", "job %s succeeded: model %s", status.job.job_id, status.model.model_id)
    return status
