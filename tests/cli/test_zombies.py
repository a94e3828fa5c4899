"""The automation `loraflow deploy` saves so that a run whose machine died is crashed, not left Running."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cli.zombies import NAME, SILENCE_ENV, heartbeat_env, silence_s, watch_for_zombies
from providers.errors import ConfigError


def test_the_automation_crashes_a_loraflow_run_ten_heartbeats_after_its_last(
        prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client

    monkeypatch.delenv(SILENCE_ENV, raising=False)
    watch_for_zombies()
    assert not watch_for_zombies()  # saved once
    saved = Automation.read(name=NAME)
    trigger = saved.trigger
    assert trigger.posture == "Proactive" and trigger.within == timedelta(seconds=300)
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
            "prefect.flow-run.Paused"} <= trigger.expect
    assert trigger.match_related.model_dump() == {"prefect.resource.role": "tag",
                                                  "prefect.resource.id": "prefect.tag.loraflow"}
    assert [action.type for action in saved.actions] == ["change-flow-run-state"]
    assert saved.actions[0].state == "CRASHED"
    assert heartbeat_env() == {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}

    monkeypatch.setenv(SILENCE_ENV, "45")  # a changed window replaces it
    assert watch_for_zombies()
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name(NAME)) == 1
    assert Automation.read(name=NAME).trigger.within == timedelta(seconds=45)


@pytest.mark.parametrize("value", ["30", "ten", "-5", ""])
def test_a_window_not_above_one_heartbeat_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SILENCE_ENV, value)
    with pytest.raises(ConfigError, match=SILENCE_ENV):
        silence_s()
