"""After an accepted offline decision: register the candidate as a model version and `challenger` at weight 0.

The canary (flows/canary.py) raises the weight from there. The first candidate of a pipeline also registers
the base model as version 1 and makes it `champion`, so the experiment has a control to compare against.
"""

from __future__ import annotations

from prefect import task

from providers.base import ModelRef
from tasks.evaluation.decision import Decision
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tasks.rundir import RunDir


def register_candidate_fn(name: str, decision: Decision, base: ModelRef, candidate: ModelRef,
                          dataset_sha256: str, run: RunDir, registry: Registry, *,
                          base_url: str | None = None) -> int | None:
    """The candidate's version number, or None when the offline decision did not accept it. `base_url` is
    where the gateway reaches the model (an OpenAI-compatible URL); a symbolic endpoint such as
    `emulator` is not one."""
    if not decision.accepted:
        return None
    base_url = base_url if base_url and "://" in base_url else None
    models = ModelRegistry(registry)
    if champion := models.aliases(name).get("champion"):
        control = f"the champion stays v{champion[0]}"
    else:
        first = models.register(name, base.model_id, base_url=base_url, provider=base.provider,
                                base_model=base.base_model, by="loraflow")
        models.set_alias(name, "champion", first.version, weight=1.0, by="loraflow",
                         reason="the base model serves everyone until a candidate wins its canary")
        control = f"the champion is v{first.version}, the base {base.model_id}, registered now as the control"
    version = models.register(name, candidate.model_id, base_url=base_url, provider=candidate.provider,
                              base_model=candidate.base_model, dataset_sha256=dataset_sha256,
                              job_id=candidate.job_id, eval_run=str(run.root), decision=decision.outcome,
                              by="loraflow")
    models.set_alias(name, "challenger", version.version, weight=0.0, by="loraflow",
                     reason=f"offline gate: {decision.outcome} ({decision.rules_version}); "
                            "awaiting the canary")
    run.record("registered", {"model": name, "version": version.version, "alias": "challenger"})
    milestone("decide", "registered %s v%d as challenger at weight 0 (no traffic until `loraflow models "
              "canary %s`); %s", name, version.version, name, control)
    return version.version


register_candidate = task(name="register-candidate", **LOCAL_WORK)(register_candidate_fn)
