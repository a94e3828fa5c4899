"""The finetune flow: train a candidate -> evaluate base vs candidate -> decide -> register an accepted
one."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_link_artifact

from flows.candidate import train_candidate
from flows.config import Pipeline
from flows.summaries import RunSummary
from tasks.connection import open_provider
from tasks.evaluation.evaluate import evaluate_models
from tasks.evaluation.gate import decide_promotion
from tasks.evaluation.teacher import compare_with_teacher
from tasks.progress import report_to_prefect
from tasks.registry import Registry
from tasks.release.promotion import register_candidate
from tasks.training.serving import release_serving


@flow(name="finetune")
def finetune(pipeline: Pipeline) -> RunSummary:
    report_to_prefect()
    with pipeline.new_run() as run:
        run.record("config", pipeline.model_dump(mode="json"))
        registry = Registry.open(pipeline.registry_url)
        cfg = pipeline.provider
        provider = open_provider(cfg)
        candidate = train_candidate(pipeline, provider, pipeline.training, pipeline.data, run, registry)
        heldout, served = candidate.data.eval_path, candidate.served
        evaluation = evaluate_models(provider, candidate.base, served, pipeline.eval, run, target=cfg.target,
                                     heldout=heldout, registry=registry)
        taught = compare_with_teacher(provider, served, pipeline.eval, pipeline.gate, run, target=cfg.target,
                                      heldout=heldout, registry=registry)
        decision = decide_promotion(evaluation, pipeline.gate, run, registry,
                                    notes=candidate.health.warnings + taught)
        release_serving(provider, candidate.trained, served, decision, run)
        register_candidate(pipeline.name, decision, candidate.base, served, candidate.data.sha256, run,
                           registry, base_url=cfg.endpoint)
        create_link_artifact(run.root.as_uri(), link_text=str(run.root), key="run-directory",
                             description="the run directory: data, outputs, report, decision, manifest")
        return RunSummary(run_dir=run.root, model_id=candidate.trained.model_id, decision=decision)
