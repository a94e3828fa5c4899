"""Serving a tuned model before it is evaluated, where the provider needs that (providers.base.ServesModels).

Serving may bill by the hour (Bedrock provisioned throughput), so it is recorded in the run manifest before
and after the call and named after the submission key: a re-run finds the same serving instead of paying for a
second. When the offline decision does not accept the candidate, the serving is deleted; an accepted one stays
up for the canary and the gateway, and the log says that it keeps billing.
"""

from __future__ import annotations

import logging

from prefect import task

from providers.base import JobRef, KeepsTrainedFiles, ModelRef, Provider, ServesModels
from tasks.evaluation.decision import Decision
from tasks.policy import PROVIDER_CALL
from tasks.progress import milestone
from tasks.rundir import RunDir
from tasks.runstore import upload, upload_tree

log = logging.getLogger(__name__)


def serving_name(submission_key: str) -> str:
    return f"loraflow-{submission_key[:24]}"


def evaluated_against(provider: Provider, trained: ModelRef, served: ModelRef) -> dict[str, str]:
    """What the candidate's answers in the evaluation come from: what serves it (a deployment or endpoint
    made for it, or the provider's own serving of the tuned id), or the training output itself (the local
    adapter loaded in-process), so the manifest says whether the served artifact is what was judged."""
    facts = {"model_id": served.model_id, "trained_model_id": trained.model_id}
    if served.model_id != trained.model_id:
        return {**facts, "artifact": "served", "detail": "the deployment or endpoint made for the candidate, "
                                                         "which production calls too"}
    describe = getattr(provider, "evaluated_artifact", None)
    if callable(describe):
        return {**facts, **describe(trained)}
    return {**facts, "artifact": "served", "detail": f"{provider.name} serves the tuned model by its id; the "
                                                      "evaluation called that id, as production does"}


@task(name="serve", **PROVIDER_CALL)
def serve_model(provider: Provider, model: ModelRef, run: RunDir, submission_key: str) -> ModelRef:
    """The ModelRef evaluation should call: `model` itself unless the provider must serve it first. The
    manifest's `evaluated_against` says which artifact that is."""
    if not isinstance(provider, ServesModels):
        run.record("evaluated_against", evaluated_against(provider, model, model))
        return model
    record = {"model_id": model.model_id, "name": serving_name(submission_key)}
    run.record("serving", {**record, "state": "requested"})
    served = provider.serve(model, name=record["name"])
    run.record("serving", {**record, "state": "serving", "served_as": served.model_id})
    run.record("evaluated_against", evaluated_against(provider, model, served))
    milestone("evaluate", "%s serves %s", served.model_id, model.model_id)
    return served


@task(name="release-serving", **PROVIDER_CALL)
def release_serving(provider: Provider, model: ModelRef, served: ModelRef, decision: Decision,
                    run: RunDir) -> None:
    """Delete the candidate's serving unless the decision accepted it (then it stays, and keeps billing)."""
    if not isinstance(provider, ServesModels) or served.model_id == model.model_id:
        return
    record = {"model_id": model.model_id, "served_as": served.model_id}
    if decision.accepted:
        run.record("serving", {**record, "state": "kept"})
        log.warning("%s keeps serving the accepted candidate and bills until it is deleted", served.model_id)
        return
    provider.unserve(served)
    run.record("serving", {**record, "state": "released"})
    milestone("decide", "deleted %s: the candidate was not accepted (%s)", served.model_id, decision.outcome)


TRAINED_FILES = "training/output"


def keep_trained_files(provider: Provider, job: JobRef, run: RunDir) -> None:
    """A run kept in an object store keeps the trained files too (the local trainer's adapter), under
    training/output/, so `loraflow serve-model` can serve it from any machine. A local run points at them."""
    if not run.remote or not isinstance(provider, KeepsTrainedFiles):
        return
    files = provider.trained_files(job)
    folder = run.root.joinpath(*TRAINED_FILES.split("/"))
    for name, path in files.items():
        (upload_tree if path.is_dir() else upload)(path, folder / name)
    run.record("trained_files", {"folder": TRAINED_FILES, "names": sorted(files)})
