"""Serving a tuned model before it is evaluated, where the provider needs that (providers.base.ServesModels).

Serving may bill by the hour (Bedrock provisioned throughput), so it is recorded in the run manifest before
and after the call and named after the submission key: a re-run finds the same serving instead of paying for a
second. When the offline decision does not accept the candidate, the serving is deleted; an accepted one stays
up for the canary and the gateway, and the log says that it keeps billing.
"""

from __future__ import annotations

import logging

from prefect import task

from providers.base import ModelRef, Provider, ServesModels
from tasks.evaluation.decision import Decision
from tasks.policy import PROVIDER_CALL
from tasks.progress import milestone
from tasks.rundir import RunDir

log = logging.getLogger(__name__)


def serving_name(submission_key: str) -> str:
    return f"loraflow-{submission_key[:24]}"


@task(name="serve", **PROVIDER_CALL)
def serve_model(provider: Provider, model: ModelRef, run: RunDir, submission_key: str) -> ModelRef:
    """The ModelRef evaluation should call: `model` itself unless the provider must serve it first."""
    if not isinstance(provider, ServesModels):
        return model
    record = {"model_id": model.model_id, "name": serving_name(submission_key)}
    run.record("serving", {**record, "state": "requested"})
    served = provider.serve(model, name=record["name"])
    run.record("serving", {**record, "state": "serving", "served_as": served.model_id})
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
