"""The monitor's checks as plain functions: online metrics from the gateway's records, retirement warnings
with a migration offer, and alerts as events."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from flows.config import Pipeline
from tasks.lifecycle.monitor import (
    Finding,
    MonitorConfig,
    OnlineLimits,
    online_findings,
    online_metrics,
    publish,
    retirement_check,
    retirement_findings,
)
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tasks.release.traffic import TrafficStore
from tests.conftest import QUICKSTART


def test_online_metrics_read_the_pipelines_experiments_only(tmp_path: Path) -> None:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    models = ModelRegistry(registry)
    for name in ("bot", "other"):
        models.register(name, "base")
        models.register(name, "ft")
        models.set_alias(name, "champion", 1, weight=1.0, reason="launch")
        models.set_alias(name, "challenger", 2, weight=0.1, reason="canary")
    ours, theirs = models.start_experiment("bot", {}).id, models.start_experiment("other", {}).id
    now, events = time.time(), []
    for i in range(100):
        for experiment in (ours, theirs):
            rid = f"{experiment}-{i}"
            events.append({"kind": "exposure", "request_id": rid, "experiment_id": experiment,
                           "unit_id": f"u{i}", "arm": "control", "served_model": "base", "fallback": False,
                           "ts": now - 60})
            events.append({"kind": "result", "request_id": rid, "latency_ms": 100.0 + i,
                           "http_status": 500 if experiment == ours and i < 5 else 200})
            kind = "thumbs_down" if experiment == ours and i % 2 else "thumbs_up"
            events.append({"kind": "outcome", "id": f"o{rid}", "request_id": rid, "type": kind, "value": 1.0,
                           "source": "user", "ts": now})
    old = {"kind": "exposure", "request_id": "old", "experiment_id": ours, "unit_id": "u", "arm": "control",
           "served_model": "base", "fallback": False, "ts": now - 3 * 86400}
    TrafficStore(registry.engine).write([*events, old,
                                         {"kind": "result", "request_id": "old", "http_status": 500}])

    metrics = online_metrics(registry.engine, "bot", datetime.now(UTC), window_hours=24)
    assert metrics["requests"] == 100 and metrics["error_rate"] == 0.05
    assert metrics["thumbs_down_rate"] == 0.5 and metrics["judge_score"] is None
    assert 190 < metrics["p95_latency_ms"] < 200
    found = online_findings(metrics, OnlineLimits(max_error_rate=0.02, max_thumbs_down_rate=0.3))
    assert [f.message.split(" is ")[0] for f in found] == ["error rate 0.05", "thumbs-down rate 0.5"]
    assert online_metrics(Registry.open(f"sqlite:///{tmp_path / 'empty.db'}").engine, "bot",
                          datetime.now(UTC), 24)["requests"] == 0


def test_retirement_warns_at_90_days_and_alerts_at_30() -> None:
    model = "gpt-4o-mini-2024-07-18"  # catalog: no new jobs after 2027-01-06, serving ends 2027-01-14
    assert retirement_findings("openai", [model], date(2026, 8, 1), [90, 30]) == []
    warned = retirement_findings("openai", [model], date(2026, 11, 1), [90, 30])
    assert [(f.severity, f.payload["days_left"]) for f in warned] == [("warn", 74), ("warn", 66)]
    alerted = retirement_findings("openai", [model, model], date(2026, 12, 20), [90, 30])
    assert [f.severity for f in alerted] == ["alert", "alert"] and "2027-01-14" in alerted[0].message
    assert retirement_findings("fake", ["fake-base"], date(2026, 12, 20), [90, 30]) == []


def test_a_retirement_offers_a_migration_run_of_the_same_data_and_eval(tmp_path: Path) -> None:
    raw = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    raw["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    pipeline = Pipeline.model_validate(raw).model_dump(mode="json")
    llama = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    config = MonitorConfig(migrate_to={"provider": "together", "base_model": llama})
    found = retirement_check(pipeline, config, ["gpt-4o-mini-2024-07-18"], date(2026, 12, 20), tmp_path)
    assert found and "loraflow run" in found[0].message
    assert f"loraflow migrate <the pipeline file of quickstart> --base {llama} --provider together" in \
        found[0].message
    migration = Pipeline.model_validate(yaml.safe_load((tmp_path / "migration.yaml").read_text()))
    assert (migration.provider.name, migration.training.base_model) == \
        ("together", config.migrate_to.base_model)
    assert migration.eval == Pipeline.model_validate(pipeline).eval and \
        migration.data.path == Path(raw["data"]["path"])
    unconfigured = retirement_check(pipeline, MonitorConfig(), ["gpt-4o-mini-2024-07-18"], date(2026, 12, 20),
                                    tmp_path / "none")
    # OpenAI's replacement cannot be fine-tuned: the command names a catalog model on another provider
    assert "recommends gpt-6-luna, which the catalog does not list as fine-tunable" in unconfigured[0].message
    assert "loraflow migrate <the pipeline file of quickstart> --base" in unconfigured[0].message


def test_warnings_and_alerts_become_events_on_the_pipeline() -> None:
    sent = []
    publish("bot", [Finding("drift", "alert", "psi 0.4", {"psi": 0.4}), Finding("gap", "info", "not closed")],
            lambda **event: sent.append(event))
    assert sent == [{"event": "loraflow.monitor.drift",
                     "resource": {"prefect.resource.id": "loraflow.pipeline.bot",
                                  "prefect.resource.name": "bot"},
                     "payload": {"severity": "alert", "message": "psi 0.4", "psi": 0.4}}]
