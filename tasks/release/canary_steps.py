"""The canary flow's steps: look at the experiment, carry out what the rule decided, and the readout.

`look` builds a snapshot from the gateway's exposures and outcomes and applies `tasks.release.canary.decide`
(the same rule the simulations check). `apply` moves the aliases: a ramp raises the challenger's weight; a
promotion (after an approval pause in the Prefect UI when the policy asks for one) makes it champion at 100 %;
a rollback or an inconclusive end sets its weight to 0. Every move is an alias change in the registry (who:
`canary`) and a `loraflow.model.*` event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.events import emit_event
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from tasks.policy import LOCAL_WORK
from tasks.registry import Registry
from tasks.release.canary import CanaryPolicy, Decision, decide
from tasks.release.models import ModelRegistry
from tasks.release.traffic import TrafficStore, snapshot

_ENDED = {"promote": "shipped", "rollback": "rolled_back", "inconclusive": "inconclusive"}


class PromotionApproval(RunInput):
    approve: bool = Field(False, description="Promote the challenger to champion at 100 %?")
    reviewer: str = ""
    note: str = ""


def readout(model: str, experiment_key: str, weight: float, decision: Decision) -> str:
    lines = [f"## Canary {model} ({experiment_key})", "",
             f"**{decision.action.upper()}**: {decision.reason}", "",
             f"challenger weight: {weight:.0%} -> {decision.weight:.0%}; SRM p = {decision.srm_p:.3g}", "",
             "| metric | Δ (treatment - control) | confidence sequence | verdict |", "|---|---|---|---|"]
    if decision.primary is not None:
        p = decision.primary
        lines.append(f"| primary | {p.delta:+.4g} | [{p.low:+.4g}, {p.high:+.4g}] | p={p.p_value:.3g} "
                     f"(n={p.n_treatment}/{p.n_control}) |")
    lines += [f"| {name} | | | {verdict} |" for name, verdict in decision.guardrails.items()]
    return "\n".join(lines)


def event(name: str, model: str, **payload: object) -> None:
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
def apply(models: ModelRegistry, model: str, experiment_id: int, decision: Decision,
          policy: CanaryPolicy) -> str:
    """Carry out a final or ramp decision; returns the experiment's status afterwards."""
    if decision.action == "ramp":
        models.set_alias(model, "challenger", None, weight=decision.weight, reason=decision.reason,
                         by="canary", experiment_id=experiment_id)
        event("ramped", model, weight=decision.weight, reason=decision.reason)
        return "running"
    if decision.action == "promote" and policy.approval:
        answer = pause_flow_run(wait_for_input=PromotionApproval.with_initial_data(
            description=readout(model, str(experiment_id), decision.weight, decision)), timeout=7 * 86_400)
        if not answer.approve:
            decision = Decision("inconclusive", 0.0,
                                f"promotion declined by {answer.reviewer or 'reviewer'}: {answer.note}",
                                decision.primary, decision.guardrails, decision.srm_p)
    if decision.action == "promote":
        models.promote(model, reason=decision.reason, by="canary")
        event("promoted", model, reason=decision.reason)
    else:
        models.rollback(model, "challenger", reason=decision.reason, by="canary")
        event("rolled-back" if decision.action == "rollback" else "stopped", model, reason=decision.reason)
    status = _ENDED[decision.action]
    models.end_experiment(experiment_id, status, decision.reason)
    return status
