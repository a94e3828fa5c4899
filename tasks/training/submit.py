"""Training: upload once, submit once per idempotency key (waiting lives in tasks/training/wait.py).

Nothing is paid twice. Uploads are keyed by (target, prepared-data sha256); jobs by a submission key
over data + spec + provider options + target + base model. Both are claimed in the registry before the
remote call and completed after it, so concurrent runs of one pipeline wait for each other instead of
calling twice (tasks/claims.py). Before any job is created, the provider is asked for one under the same
key (`find_job`), so neither a run that died around `create_job` nor a lost registry pays twice. A job
that ended FAILED or CANCELLED is retried as a new attempt with its own key.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from prefect import task

from providers.base import DatasetRef, JobRef, JobState, PreparedDataset, Provider, TrainingSpec
from tasks.claims import WAIT_POLL_S, current_owner
from tasks.policy import PROVIDER_CALL
from tasks.progress import milestone
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
    owner = current_owner()
    while True:
        existing = registry.finished_upload(target, data.sha256)
        if existing is not None:
            milestone("upload", "reusing upload %s of dataset %s", existing.train_file_id, data.sha256[:12])
            return existing
        if registry.claim_upload(target, data.sha256, owner):
            break
        time.sleep(WAIT_POLL_S)  # another run is uploading the same data right now
    ref = provider.upload(data)
    registry.upload_finished(target, ref)
    milestone("upload", "uploaded dataset %s as %s", data.sha256[:12], ref.train_file_id)
    return ref


@task(name="submit", **PROVIDER_CALL)
def submit_job(provider: Provider, spec: TrainingSpec, data: DatasetRef, registry: Registry, target: str,
               key: str) -> JobRef:
    owner = current_owner()
    while True:
        record = registry.latest_job(key)
        if record is not None and record.job_id is not None:
            if JobState(record.state or "pending") not in _RETRYABLE_END:
                milestone("submit", "re-attaching to job %s (%s)", record.job_id, record.state or "submitted")
                return JobRef(provider=provider.name, job_id=record.job_id,
                              idempotency_key=record.idempotency_key)
            attempt = record.attempt + 1
            idempotency_key = f"{key[:40]}-a{attempt}"
            if registry.claim_job(idempotency_key=idempotency_key, submission_key=key, attempt=attempt,
                                  target=target, base_model=spec.base_model, owner=owner):
                return _create(provider, spec, data, registry, idempotency_key, attempt)
        elif record is not None and registry.take_over_job(record, owner):
            return _create(provider, spec, data, registry, record.idempotency_key, record.attempt)
        elif record is None and registry.claim_job(idempotency_key=f"{key[:40]}-a1", submission_key=key,
                                                   attempt=1, target=target, base_model=spec.base_model,
                                                   owner=owner):
            return _create(provider, spec, data, registry, f"{key[:40]}-a1", 1)
        time.sleep(WAIT_POLL_S)  # another live run holds the claim: wait for its job id


def _create(provider: Provider, spec: TrainingSpec, data: DatasetRef, registry: Registry,
            idempotency_key: str, attempt: int) -> JobRef:
    """Create the job, unless the provider already has one under this key: the provider is the source of
    truth for what exists there. A run that died around `create_job`, a registry lost or emptied (a new
    machine, a fresh database) or another machine's run all end here with a claim and no job id."""
    if (found := provider.find_job(idempotency_key)) is not None:
        registry.job_created(found)
        milestone("submit", "found job %s under key %s at the provider (no local record of it): not "
                            "creating another", found.job_id, idempotency_key)
        return found
    job = provider.create_job(spec, data, idempotency_key=idempotency_key)
    registry.job_created(job)
    milestone("submit", "created job %s (attempt %d)", job.job_id, attempt)
    return job
