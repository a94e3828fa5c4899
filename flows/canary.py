"""The canary flow: ramp the challenger 1 -> 5 -> 10 %, watch it, then promote, roll back or stop.

Breakers, SRM, a guardrail beyond its margin or a worse primary set the challenger's weight to 0 at once; a
win promotes it to champion at 100 % (after an approval pause in the Prefect UI when the policy asks for one);
the maximum duration ends the experiment as inconclusive. The steps are tasks/release/canary_steps.py; each
look updates a markdown readout artifact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.registry import Registry
from tasks.release.canary import CanaryPolicy
from tasks.release.canary_steps import apply, event, look, readout
from tasks.release.models import ModelRegistry
from tasks.release.traffic import aware


@flow(name="canary")
def canary(model: str, policy: CanaryPolicy | None = None, registry_url: str | None = None,
           look_every_s: float = 300.0, window_s: float = 900.0, experiment_id: int | None = None) -> str:
    """Run the canary of `model`'s challenger to its end; returns the experiment's final status.
    `experiment_id` resumes a running experiment (after a crash) at the challenger's current weight."""
    policy = policy or CanaryPolicy()
    log, models = get_run_logger(), ModelRegistry(Registry.open(registry_url))
    if experiment_id is None:
        experiment, weight = models.start_experiment(model, policy.model_dump(mode="json")), policy.ramp[0]
        models.set_alias(model, "challenger", None, weight=weight, reason=f"canary {experiment.key} starts",
                         by="canary", experiment_id=experiment.id)
        event("canary-started", model, experiment=experiment.key, weight=weight)
    else:
        experiment, weight = models.experiment(experiment_id), models.aliases(model)["challenger"][1]
    started = step_started = aware(experiment.started_at)
    previous_p = 1.0
    while True:
        time.sleep(look_every_s)
        decision = look(registry_url, experiment.id, policy, weight, started, step_started, previous_p,
                        window_s)
        previous_p = decision.primary.p_value if decision.primary is not None else previous_p
        create_markdown_artifact(readout(model, experiment.key, weight, decision),
                                 key=f"canary-{_key(model)}",
                                 description=f"{decision.action}: {decision.reason}")
        log.info("canary %s at %.0f%%: %s (%s)", model, weight * 100, decision.action, decision.reason)
        if decision.action == "continue":
            continue
        status = apply(models, model, experiment.id, decision, policy)
        if status != "running":
            return status
        weight, step_started = decision.weight, datetime.now(UTC)


def _key(model: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in model.lower())
