"""A flow run whose machine died is marked Crashed, so that it can be retried on another.

Prefect leaves such a run Running for ever: a worker or pod that dies reports nothing (PrefectHQ/prefect
#16746). `loraflow deploy` gives every run a heartbeat every HEARTBEAT_S and saves one automation, Prefect's
zombie detection (docs: advanced/detect-zombie-flows): a loraflow run (tag `loraflow`) that sends no
heartbeat and no other state within `silence_s` of its last heartbeat is set Crashed. The window is ten
heartbeats by default, because a shorter one crashes healthy runs (prefect#16459, #18653). A crashed run is
retried with `prefect flow-run retry ID` (or run again): its upload and job are found by their keys, so
nothing is paid twice.
"""

from __future__ import annotations

import os
from datetime import timedelta

HEARTBEAT_S = 30  # Prefect's smallest heartbeat interval
TAG = "loraflow"  # `loraflow deploy` puts it on every deployment, and so on their runs
SILENCE_ENV = "LORAFLOW_ZOMBIE_SILENCE_S"
NAME = "loraflow: crash a flow run whose heartbeat stopped"
_STATES = ("Completed", "Failed", "Cancelled", "Crashed", "Paused", "Suspended", "Cancelling")


def heartbeat_env() -> dict[str, str]:
    """What every deployed run gets, so that the automation hears it."""
    return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}


def silence_s() -> int:
    """The window after the last heartbeat ($LORAFLOW_ZOMBIE_SILENCE_S, more than one heartbeat)."""
    value = os.environ.get(SILENCE_ENV, str(10 * HEARTBEAT_S))
    if not value.isdigit() or int(value) <= HEARTBEAT_S:
        from providers.errors import ConfigError

        raise ConfigError(f"{SILENCE_ENV}={value!r}: give whole seconds above the heartbeat of {HEARTBEAT_S}")
    return int(value)


def watch_for_zombies() -> bool:
    """Save the automation (again when its window changed); whether it was written."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    window = timedelta(seconds=silence_s())
    try:
        found = Automation.read(name=NAME)
    except ValueError:
        found = None
    if found is not None:
        if getattr(found.trigger, "within", None) == window:
            return False
        found.delete()
    Automation(name=NAME, description=__doc__.split("\n\n")[1].replace("\n", " "), trigger=EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in _STATES)},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"},
        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1, within=window),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {window.seconds} s: its machine was lost")],
    ).create()
    return True
