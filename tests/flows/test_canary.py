"""The canary flow on the shared Prefect API: a tripped breaker rolls back; a clear win promotes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from prefect.flow_runs import resume_flow_run

from flows.canary import canary
from tasks.registry import Registry
from tasks.release.canary import Breakers, CanaryPolicy
from tasks.release.models import ModelRegistry
from tasks.release.traffic import TrafficStore
from tests.flows.pipelines import paused_run_id


def _setup(tmp_path: Path, weight: float) -> tuple[str, ModelRegistry, int]:
    tmp_path.mkdir()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    models = ModelRegistry(Registry.open(url))
    models.register("bot", "base")
    models.register("bot", "ft")
    models.set_alias("bot", "champion", 1, weight=1.0, reason="launch")
    models.set_alias("bot", "challenger", 2, weight=weight, reason="canary")
    return url, models, models.start_experiment("bot", {}).id


def _traffic(url: str, experiment: int, arms: dict[str, int], error: dict[str, float],
             scores: dict[str, float]):
    rng, now, events = np.random.default_rng(0), time.time(), []
    for arm, n in arms.items():
        for i in range(n):
            rid = f"{arm}-{i}"
            events.append({"kind": "exposure", "request_id": rid, "experiment_id": experiment,
                           "unit_id": f"{arm}{i}", "arm": arm, "served_model": arm, "fallback": False,
                           "ts": now - 60})
            events.append({"kind": "result", "request_id": rid, "latency_ms": 100.0, "cost_usd": 0.001,
                           "http_status": 500 if rng.random() < error[arm] else 200, "refusal": False})
            events.append({"kind": "outcome", "id": f"o-{rid}", "request_id": rid, "type": "judge_score",
                           "value": float(rng.normal(scores[arm], 0.5)), "source": "judge", "ts": now})
    TrafficStore(Registry.open(url).engine).write(events)


def test_canary_rolls_back_on_a_breaker_and_promotes_a_clear_win(prefect_api, tmp_path: Path):
    url, models, experiment = _setup(tmp_path / "bad", 0.05)
    _traffic(url, experiment, {"treatment": 300, "control": 300}, {"treatment": 0.4, "control": 0.0},
             {"treatment": 3.0, "control": 3.0})
    policy = CanaryPolicy(ramp=[0.05, 0.10], breakers=Breakers(min_requests=100))
    assert canary("bot", policy, url, look_every_s=0, experiment_id=experiment) == "rolled_back"
    assert models.aliases("bot")["challenger"] == (2, 0.0)
    assert "circuit breaker: error rate" in models.history("bot")[-1].reason
    assert models.experiment(experiment).status == "rolled_back"

    url, models, experiment = _setup(tmp_path / "good", 0.5)
    _traffic(url, experiment, {"treatment": 200, "control": 200}, {"treatment": 0.0, "control": 0.0},
             {"treatment": 4.0, "control": 3.0})
    policy = CanaryPolicy(ramp=[0.5], min_duration_s=0, min_n=30, tau=0.5)
    assert canary("bot", policy, url, look_every_s=0, experiment_id=experiment) == "shipped"
    assert models.aliases("bot") == {"champion": (2, 1.0), "challenger": (2, 0.0)}
    assert models.history("bot")[-2].changed_by == "canary"


def test_a_win_waits_for_approval_and_a_declined_promotion_stops_the_canary(prefect_api, tmp_path: Path):
    url, models, experiment = _setup(tmp_path / "approval", 0.5)
    _traffic(url, experiment, {"treatment": 200, "control": 200}, {"treatment": 0.0, "control": 0.0},
             {"treatment": 4.0, "control": 3.0})
    policy = CanaryPolicy(ramp=[0.5], min_duration_s=0, min_n=30, tau=0.5, approval=True)
    outcome: dict[str, str] = {}
    runner = threading.Thread(target=lambda: outcome.update(status=canary("bot", policy, url, look_every_s=0,
                                                                          experiment_id=experiment)))
    runner.start()
    resume_flow_run(paused_run_id(flow_name="canary"), run_input={"approve": False, "reviewer": "ana",
                                                                  "note": "wait for the launch"})
    runner.join(timeout=120)
    assert outcome["status"] == "inconclusive"
    assert models.aliases("bot") == {"champion": (1, 1.0), "challenger": (2, 0.0)}
    assert "declined by ana: wait for the launch" in models.history("bot")[-1].reason
