"""The quarterly retrain: new data + the newest base -> a candidate that must beat the champion and the base."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.config import Pipeline
from providers.base import ModelRef
from tasks.connection import open_provider
from tasks.training.costs import budget_gate, record_actual_cost, spend_ceiling
from tasks.data.prepare import prepare_dataset
from tasks.data.target import DataTarget
from tasks.release.promotion import register_candidate
from tasks.registry import Registry
from tasks.lifecycle.retrain import (
    champion_ref,
    champion_version,
    compare_on_frozen_set,
    existing_data,
    gather_new_data,
    judge_retrain,
    mark_consumed,
    nothing_new,
    render_summary,
    retrain_data,
)
from tasks.rundir import RunDir
from tasks.training.serving import release_serving, serve_model
from tasks.training.submit import check_spec, submission_key, submit_job, upload_dataset
from tasks.training.wait import wait_for_job


@dataclass(frozen=True)
class RetrainSummary:
    run_dir: Path
    winner: str
    reason: str
    version: int | None


@flow(name="retrain")
def retrain(pipeline: Pipeline) -> RetrainSummary:
    run = RunDir.create(pipeline.run_root, pipeline.name,
                        hashlib.sha256(pipeline.model_dump_json().encode()).hexdigest())
    run.record("config", pipeline.model_dump(mode="json"))
    registry, cfg, runs = Registry.open(pipeline.registry_url), pipeline.provider, pipeline.run_root / pipeline.name
    spec = pipeline.training.model_copy(update={"base_model": pipeline.retrain.base_model or
                                                pipeline.training.base_model})
    target, champion = DataTarget(cfg.name, spec.base_model, spec.epochs), champion_version(registry, pipeline.name)
    new = gather_new_data(pipeline.retrain, run, runs, registry.engine)
    if reason := nothing_new(new, champion, spec.base_model):
        run.record("retrain", {"winner": "champion", "promote": False, "reason": reason})
        return RetrainSummary(run.root, "champion", reason, None)
    with open_provider(cfg.name, cfg.options, cfg.endpoint, cfg.api_key_secret) as provider:
        check_spec(provider, spec)
        existing = existing_data(pipeline.data, champion, run, target)
        data = prepare_dataset(retrain_data(pipeline.data, existing, new, run), run, target)
        estimate = budget_gate(data, cfg.name, spec, pipeline.budget, run)
        uploaded = upload_dataset(provider, data, registry, cfg.target)
        key = submission_key(cfg.target, cfg.options, spec, data.sha256)
        job = submit_job(provider, spec, uploaded, registry, cfg.target, key)
        done = wait_for_job(provider, job, pipeline.poll, registry, spend=spend_ceiling(estimate, pipeline.budget))
        record_actual_cost(run, estimate, done)
        served = serve_model(provider, done.model, run, key)
        base = ModelRef(provider=cfg.name, model_id=spec.base_model, base_model=spec.base_model)
        against = {"vs-base": base} | ({"vs-champion": champion_ref(champion)} if champion else {})
        decisions = {label: compare_on_frozen_set(provider, ref, served, pipeline.eval, pipeline.gate, run, label,
                                                  target=cfg.target, heldout=data.eval_path,
                                                  registry=registry)
                     for label, ref in against.items()}
        verdict = judge_retrain(decisions["vs-base"], decisions.get("vs-champion"))
        release_serving(provider, done.model, served, verdict.decision, run)
    version = register_candidate(pipeline.name, verdict.decision, base, served, data.sha256, run, registry,
                                 base_url=cfg.endpoint) if verdict.promote else None
    run.record("retrain", {"winner": verdict.winner, "promote": verdict.promote, "reason": verdict.reason,
                           "version": version, "new_rows": new.rows})
    mark_consumed(new, run, runs)
    create_markdown_artifact(render_summary(verdict, base_model=spec.base_model, new_rows=new.rows,
                                            champion=champion.served_name if champion else None,
                                            candidate=served.model_id, version=version),
                             key="retrain-summary", description=f"{verdict.winner} wins: {verdict.reason}"[:500])
    return RetrainSummary(run.root, verdict.winner, verdict.reason, version)
