"""The canary flow: ramp the challenger 1 -> 5 -> 10 %, watch it, then promote, roll back or stop.

Each look builds a snapshot from the gateway's exposures and outcomes and applies `tasks.release.canary.decide` (the same
rule the simulations check). Breakers, SRM, a guardrail beyond its margin or a worse primary set the challenger's
weight to 0 at once; a win promotes it to champion at 100 % (after an approval pause in the Prefect UI when the
policy asks for one); the maximum duration ends the experiment as inconclusive. Every move is an alias change in
the registry (who: `canary`) and a `loraflow.model.*` event; each look updates a markdown readout artifact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from tasks.release.canary import CanaryPolicy, Decision, decide
from tasks.release.models import ModelRegistry
from tasks.policy import LOCAL_WORK
from tasks.registry import Registry
from tasks.release.traffic import TrafficStore, snapshot

_ENDED = {"promote": "shipped", "rollback": "rolled_back", "inconclusive": "inconclusive"}


class PromotionApproval(RunInput):
    approve: bool = Field(False, description="Promote the challenger to champion at 100 %?")
    reviewer: str = ""
    note: str = ""


def readout(model: str, experiment_key: str, weight: float, decision: Decision) -> str:
    lines = [f"## Canary {model} ({experiment_key})", "", f"**{decision.action.upper()}**: {decision.reason}", "",
             f"challenger weight: {weight:.0%} -> {decision.weight:.0%}; SRM p = {decision.srm_p:.3g}", "",
             "| metric | Δ (treatment - control) | confidence sequence | verdict |", "|---|---|---|---|"]
    if decision.primary is not None:
        p = decision.primary
        lines.append(f"| primary | {p.delta:+.4g} | [{p.low:+.4g}, {p.high:+.4g}] | p={p.p_value:.3g} "
                     f"(n={p.n_treatment}/{p.n_control}) |")
    lines += [f"| {name} | | | {verdict} |" for name, verdict in decision.guardrails.items()]
    return "\n".join(lines)


def _event(name: str, model: str, **payload: object) -> None:
    emit_event(event=f"loraflow.model.{name}", resource={"prefect.resource.id": f"loraflow.model.{model}"},
               payload=payload)


@task(name="canary-look", **LOCAL_WORK)
def look(registry_url: str | None, experiment_id: int, policy: CanaryPolicy, weight: float, started: datetime,
         step_started: datetime, previous_p: float, window_s: float) -> Decision:
    store = TrafficStore(Registry.open(registry_url).engine)
    now = datetime.now(UTC)
    view = snapshot(store, experiment_id, policy.primary, weight=weight, started=started,
                    step_started=step_started, now=now, window_s=window_s)
    return decide(policy, view, previous_p)


@task(name="canary-apply", **LOCAL_WORK)
def apply(models: ModelRegistry, model: str, experiment_id: int, decision: Decision, policy: CanaryPolicy) -> str:
    """Carry out a final or ramp decision; returns the experiment's status afterwards."""
    if decision.action == "ramp":
        models.set_alias(model, "challenger", None, weight=decision.weight, reason=decision.reason, by="canary",
                         experiment_id=experiment_id)
        _event("ramped", model, weight=decision.weight, reason=decision.reason)
        return "running"
    if decision.action == "promote" and policy.approval:
        answer = pause_flow_run(wait_for_input=PromotionApproval.with_initial_data(
            description=readout(model, str(experiment_id), decision.weight, decision)), timeout=7 * 86_400)
        if not answer.approve:
            decision = Decision("inconclusive", 0.0, f"promotion declined by {answer.reviewer or 'reviewer'}: "
                                f"{answer.note}", decision.primary, decision.guardrails, decision.srm_p)
    if decision.action == "promote":
        models.promote(model, reason=decision.reason, by="canary")
        _event("promoted", model, reason=decision.reason)
    else:
        models.rollback(model, "challenger", reason=decision.reason, by="canary")
        _event("rolled-back" if decision.action == "rollback" else "stopped", model, reason=decision.reason)
    status = _ENDED[decision.action]
    models.end_experiment(experiment_id, status, decision.reason)
    return status


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
        _event("canary-started", model, experiment=experiment.key, weight=weight)
    else:
        experiment, weight = models.experiment(experiment_id), models.aliases(model)["challenger"][1]
    started = step_started = _aware(experiment.started_at)
    previous_p = 1.0
    while True:
        time.sleep(look_every_s)
        decision = look(registry_url, experiment.id, policy, weight, started, step_started, previous_p, window_s)
        previous_p = decision.primary.p_value if decision.primary is not None else previous_p
        create_markdown_artifact(readout(model, experiment.key, weight, decision), key=f"canary-{_key(model)}",
                                 description=f"{decision.action}: {decision.reason}")
        log.info("canary %s at %.0f%%: %s (%s)", model, weight * 100, decision.action, decision.reason)
        if decision.action == "continue":
            continue
        status = apply(models, model, experiment.id, decision, policy)
        if status != "running":
            return status
        weight, step_started = decision.weight, datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _key(model: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in model.lower())
