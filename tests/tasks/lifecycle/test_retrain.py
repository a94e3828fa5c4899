"""The retrain's data sources as plain functions: files since the last run, and the gateway's opt-in capture
joined with the feedback users gave (through a real gateway on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.server import build_gateway
from providers.loopback import ThreadedServer
from tasks.evaluation.decision import Decision
from tasks.lifecycle.retrain import (
    RetrainConfig,
    TrafficSource,
    captured_rows,
    gather_new_data,
    judge_retrain,
    mark_consumed,
    read_ledger,
)
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tasks.release.traffic import TrafficStore
from tasks.rundir import RunDir
from tests.conftest import write_jsonl
from tests.gateway.upstream import upstream_app

KEY = "sk-test"


def test_files_are_taken_once_across_runs(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_jsonl(incoming / "a.jsonl", ['{"messages": []}', "", '{"messages": [1]}'])
    runs, config = tmp_path / "runs", RetrainConfig(sources=[str(incoming / "*.jsonl")])
    first = gather_new_data(config, RunDir(tmp_path / "r1"), runs)
    assert first.rows == 2 and len(first.files) == 1
    mark_consumed(first, RunDir(tmp_path / "r1"), runs)
    write_jsonl(incoming / "b.jsonl", ['{"messages": [2]}'])
    second = gather_new_data(config, RunDir(tmp_path / "r2"), runs)
    assert second.rows == 1 and second.path.read_text() == '{"messages": [2]}\n'


def test_captured_traffic_becomes_training_rows_by_feedback(tmp_path: Path) -> None:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    upstream = ThreadedServer(upstream_app()).start()
    ModelRegistry(registry).register("assistant", "ft-m", base_url=f"{upstream.url}/v1")
    ModelRegistry(registry).set_alias("assistant", "champion", 1, weight=1.0, reason="launch")
    gateway = build_gateway(registry, [KEY], spill_path=tmp_path / "spill.jsonl", flush_interval_s=0.05,
                            capture_dir=tmp_path / "capture")
    server = ThreadedServer(create_app(gateway)).start()
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        ids = []
        for i, text in enumerate(["mail me at jane.doe@example.com", "second question", "third question"]):
            answer = httpx.post(f"{server.url}/v1/chat/completions", headers=headers, json={
                "model": "assistant", "messages": [{"role": "user", "content": f"{text} {i}"}]})
            ids.append(answer.headers["x-loraflow-request-id"])
        for request_id, kind in ((ids[0], "thumbs_up"), (ids[1], "thumbs_down")):
            assert httpx.post(f"{server.url}/v1/feedback", headers=headers,
                              json={"request_id": request_id, "type": kind}).status_code == 202
        assert gateway.exposures.flush()
    finally:
        server.stop()
        gateway.exposures.close()
        gateway.routes.close()
        gateway.capture.close()
        upstream.stop()
    captured = [json.loads(line) for path in (tmp_path / "capture").glob("capture-*.jsonl")
                for line in path.read_text().splitlines()]
    assert [c["request_id"] for c in captured] == ids
    assert captured[0]["messages"] == [{"role": "user", "content": "mail me at <EMAIL> 0"},
                                       {"role": "assistant", "content": "hello from ft-m"}]

    TrafficStore(registry.engine)  # the outcomes table exists once the gateway wrote
    source = TrafficSource(capture=str(tmp_path / "capture" / "*.jsonl"))
    approved, newest = captured_rows(source, registry.engine, since=None)
    assert [json.loads(r)["messages"][0]["content"] for r in approved] == ["mail me at <EMAIL> 0"]
    assert newest == max(c["ts"] for c in captured)
    unrejected, _ = captured_rows(source.model_copy(update={"keep": "not_thumbs_down"}), registry.engine,
                                  None)
    assert len(unrejected) == 2
    assert captured_rows(source, registry.engine, since=newest) == ([], newest)

    runs, config = tmp_path / "runs", RetrainConfig(traffic=source)
    new = gather_new_data(config, RunDir(tmp_path / "r1"), runs, registry.engine)
    assert new.rows == 1
    mark_consumed(new, RunDir(tmp_path / "r1"), runs)
    assert read_ledger(runs)["traffic"]["until"] == newest
    assert gather_new_data(config, RunDir(tmp_path / "r2"), runs, registry.engine).rows == 0


def _decision(outcome: str) -> Decision:
    return Decision.model_construct(outcome=outcome, primary="target/x", reason=f"{outcome} because",
                                    comparisons=[])


def test_the_verdict_promotes_only_a_candidate_that_beats_both() -> None:
    accepted, marginal, worse = _decision("accept"), _decision("marginal"), _decision("reject_worse")
    assert judge_retrain(accepted, accepted).promote and judge_retrain(accepted, None).winner == "candidate"
    held = judge_retrain(accepted, marginal)
    assert (held.winner, held.promote, held.decision) == ("champion", False, marginal)
    assert held.reason.startswith("the champion holds")
    caught_up = judge_retrain(worse, accepted)
    assert (caught_up.winner, caught_up.promote) == ("base", False) and \
        caught_up.reason.startswith("base caught up")
    unclear = judge_retrain(_decision("underpowered"), accepted)
    assert (unclear.winner, unclear.promote) == ("champion", False) and "underpowered" in unclear.reason
