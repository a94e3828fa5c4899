"""The finetune flow: prepare data -> upload -> submit -> wait -> evaluate base vs candidate -> decide."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_link_artifact

from flows.config import Pipeline
from providers.base import ModelRef
from tasks.connection import open_provider
from tasks.training.costs import budget_gate, record_actual_cost, spend_ceiling
from tasks.data.prepare import prepare_dataset
from tasks.data.target import DataTarget
from tasks.evaluation.teacher import compare_with_teacher
from tasks.evaluation.evaluate import evaluate_models
from tasks.evaluation.gate import Decision, decide_promotion
from tasks.training.health import check_training_health
from tasks.release.promotion import register_candidate
from tasks.registry import Registry
from tasks.rundir import RunDir
from tasks.training.serving import release_serving, serve_model
from tasks.training.submit import check_spec, submission_key, submit_job, upload_dataset
from tasks.training.wait import wait_for_job


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    model_id: str
    decision: Decision


@flow(name="finetune")
def finetune(pipeline: Pipeline) -> RunSummary:
    config_sha = hashlib.sha256(pipeline.model_dump_json().encode()).hexdigest()
    run = RunDir.create(pipeline.run_root, pipeline.name, config_sha)
    run.record("config", pipeline.model_dump(mode="json"))
    registry = Registry.open(pipeline.registry_url)
    cfg, spec = pipeline.provider, pipeline.training
    with open_provider(cfg.name, cfg.options, cfg.endpoint, cfg.api_key_secret) as provider:
        check_spec(provider, spec)
        data = prepare_dataset(pipeline.data, run, DataTarget(cfg.name, spec.base_model, spec.epochs))
        estimate = budget_gate(data, cfg.name, spec, pipeline.budget, run)
        uploaded = upload_dataset(provider, data, registry, cfg.target)
        key = submission_key(cfg.target, cfg.options, spec, data.sha256)
        job = submit_job(provider, spec, uploaded, registry, cfg.target, key)
        run.record("training", {"provider": cfg.name, "upload": uploaded.model_dump(mode="json"),
                                "job": job.model_dump(mode="json")})
        done = wait_for_job(provider, job, pipeline.poll, registry, spend=spend_ceiling(estimate, pipeline.budget))
        record_actual_cost(run, estimate, done)
        health = check_training_health(provider, done, spec, data, run)
        run.record("model", done.model.model_dump(mode="json"))
        base = ModelRef(provider=cfg.name, model_id=spec.base_model, base_model=spec.base_model)
        served = serve_model(provider, done.model, run, key)
        evaluation = evaluate_models(provider, base, served, pipeline.eval, run, target=cfg.target,
                                     heldout=data.eval_path, registry=registry)
        taught = compare_with_teacher(provider, served, pipeline.eval, pipeline.gate, run, target=cfg.target,
                                      heldout=data.eval_path, registry=registry)
        decision = decide_promotion(evaluation, pipeline.gate, run, registry, notes=health.warnings + taught)
        release_serving(provider, done.model, served, decision, run)
    register_candidate(pipeline.name, decision, base, served, data.sha256, run, registry, base_url=cfg.endpoint)
    create_link_artifact(run.root.as_uri(), link_text=str(run.root), key="run-directory",
                         description="the run directory: data, outputs, report, decision, manifest")
    return RunSummary(run_dir=run.root, model_id=done.model.model_id, decision=decision)
