"""The quarterly retrain: new data + the newest base -> a candidate that must beat the champion and the
base."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.candidate import train_candidate
from flows.config import Pipeline
from flows.summaries import RetrainSummary
from tasks.connection import open_provider
from tasks.data.target import DataTarget
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
from tasks.progress import report_to_prefect
from tasks.registry import Registry
from tasks.release.promotion import register_candidate
from tasks.training.serving import release_serving


@flow(name="retrain")
def retrain(pipeline: Pipeline) -> RetrainSummary:
    report_to_prefect()
    with pipeline.new_run() as run:
        run.record("config", pipeline.model_dump(mode="json"))
        registry, cfg = Registry.open(pipeline.registry_url), pipeline.provider
        runs = pipeline.runs
        spec = pipeline.training.model_copy(update={"base_model": pipeline.retrain.base_model or
                                                    pipeline.training.base_model})
        champion = champion_version(registry, pipeline.name)
        new = gather_new_data(pipeline.retrain, run, runs, registry.engine)
        if reason := nothing_new(new, champion, spec.base_model):
            run.record("retrain", {"winner": "champion", "promote": False, "reason": reason})
            return RetrainSummary(run.root, "champion", reason, None)
        provider = open_provider(cfg)
        target = DataTarget(cfg.name, spec.base_model, spec.epochs)
        existing = existing_data(pipeline.data, champion, run, target)
        data = retrain_data(pipeline.data, existing, new, run)
        candidate = train_candidate(pipeline, provider, spec, data, run, registry)
        served, base = candidate.served, candidate.base
        against = {"vs-base": base} | ({"vs-champion": champion_ref(champion)} if champion else {})
        decisions = {label: compare_on_frozen_set(provider, ref, served, pipeline.eval, pipeline.gate, run,
                                                  label, target=cfg.target, heldout=candidate.data.eval_path,
                                                  registry=registry)
                     for label, ref in against.items()}
        verdict = judge_retrain(decisions["vs-base"], decisions.get("vs-champion"))
        release_serving(provider, candidate.trained, served, verdict.decision, run)
        version = register_candidate(pipeline.name, verdict.decision, base, served, candidate.data.sha256,
                                     run, registry, base_url=cfg.endpoint) if verdict.promote else None
        run.record("retrain", {"winner": verdict.winner, "promote": verdict.promote, "reason": verdict.reason,
                               "version": version, "new_rows": new.rows})
        mark_consumed(new, run, runs)
        create_markdown_artifact(render_summary(verdict, base_model=spec.base_model, new_rows=new.rows,
                                                champion=champion.served_name if champion else None,
                                                candidate=served.model_id, version=version),
                                 key="retrain-summary",
                                 description=f"{verdict.winner} wins: {verdict.reason}"[:500])
        return RetrainSummary(run.root, verdict.winner, verdict.reason, version)
