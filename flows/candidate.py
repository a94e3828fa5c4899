"""Train a candidate: the steps the finetune and the quarterly retrain flows share.

    check the spec ─► prepare data ─► cost estimate & budget gate ─► upload (once) ─► submit (once)
       ─► wait ─► actual cost ─► training health ─► serve (where the provider needs it)

A plain function, not a @flow: its tasks and artifacts (data report, progress, training health) belong to the
calling flow's run, where the UI shows them; a subflow would move them to a child run.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.config import Pipeline
from providers.base import ModelRef, PreparedDataset, Provider, TrainingSpec
from tasks.data.config import DataConfig
from tasks.data.prepare import prepare_dataset
from tasks.data.target import DataTarget
from tasks.registry import Registry
from tasks.rundir import RunDir
from tasks.training.costs import budget_gate, record_actual_cost, spend_ceiling
from tasks.training.health import Health, check_training_health
from tasks.training.serving import keep_trained_files, serve_model
from tasks.training.submit import check_spec, submission_key, submit_job, upload_dataset
from tasks.training.wait import wait_for_job


@dataclass(frozen=True)
class Candidate:
    """A trained model and what it came from. `served` is what evaluation calls (the trained model itself
    unless the provider serves it first); `base` is the base model it was tuned from."""

    data: PreparedDataset
    trained: ModelRef
    served: ModelRef
    base: ModelRef
    health: Health


def train_candidate(pipeline: Pipeline, provider: Provider, spec: TrainingSpec, data: DataConfig, run: RunDir,
                    registry: Registry) -> Candidate:
    """Train `spec` on `data` at the pipeline's provider; nothing is uploaded or submitted twice."""
    cfg = pipeline.provider
    check_spec(provider, spec)
    prepared = prepare_dataset(data, run, DataTarget(cfg.name, spec.base_model, spec.epochs))
    estimate = budget_gate(prepared, cfg.name, spec, pipeline.budget, run)
    uploaded = upload_dataset(provider, prepared, registry, cfg.target)
    key = submission_key(cfg.target, cfg.options, spec, prepared.sha256)
    job = submit_job(provider, spec, uploaded, registry, cfg.target, key)
    run.record("training", {"provider": cfg.name, "upload": uploaded.model_dump(mode="json"),
                            "job": job.model_dump(mode="json")})
    spend = spend_ceiling(estimate, pipeline.budget)
    done = wait_for_job(provider, job, pipeline.poll, registry, spend=spend)
    record_actual_cost(run, estimate, done)
    health = check_training_health(provider, done, spec, prepared, run)
    keep_trained_files(provider, job, run)
    run.record("model", done.model.model_dump(mode="json"))
    served = serve_model(provider, done.model, run, key)
    base = ModelRef(provider=cfg.name, model_id=spec.base_model, base_model=spec.base_model)
    return Candidate(data=prepared, trained=done.model, served=served, base=base, health=health)
