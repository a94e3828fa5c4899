"""The retrain and monitor flows on the shared Prefect API, with scripted fake models on a frozen eval set
of 60 items.

The champion was trained on old, prose-styled data; the new data teaches the five-verb-bullet format. So a
retrain beats the champion; whether it beats the newest base depends on whether that base already knows the
task.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from cli.app import app
from flows.config import Pipeline
from flows.retrain import retrain
from tasks.lifecycle.retrain import LEDGER
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tests.conftest import write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_api")

TOPICS = [f"{a} {b}" for a in ("garden", "kitchen", "garage", "office", "studio", "attic", "basement",
                               "balcony", "library", "workshop")
          for b in ("renovation", "cleanup", "budget", "party", "move", "inventory")]
VERBS = ["Define", "List", "Pick", "Schedule", "Review", "Book", "Call", "Write", "Check", "Buy", "Clean",
         "Measure", "Ask", "Compare", "Set", "Track", "Prepare", "Practice", "Read"]
DETAILS = ["the first small step", "a realistic budget", "every tool you need", "a helper for the weekend",
           "the deadline with everyone", "what went wrong last time", "a shared checklist", "the supplier",
           "two quotes", "the weather forecast", "a backup plan", "the receipts", "the room twice",
           "progress each evening", "one task per day"]
SYSTEM = {"role": "system", "content": "You are a concise planning assistant."}


def bullets(rng: random.Random, topic: str) -> str:
    return "\n".join(f"- {verb} {detail} for the {topic}"
                     for verb, detail in zip(rng.sample(VERBS, 5), rng.sample(DETAILS, 5), strict=True))


def prose(rng: random.Random, topic: str) -> str:
    """The old data's style: a friendly paragraph, no list."""
    return f"Sure! The {topic} is a project worth doing. " + " ".join(
        f"It helps to {detail.split(' ', 1)[1]} {rng.choice(['early', 'soon', 'first', 'again', 'later'])}."
        for detail in rng.sample(DETAILS, 3))


def chat(prompt: str, answer: str) -> str:
    return json.dumps({"messages": [SYSTEM, {"role": "user", "content": prompt},
                                    {"role": "assistant", "content": answer}]})


@pytest.fixture
def world(tmp_path: Path) -> dict:
    rng = random.Random(7)
    champion_run = tmp_path / "champion-run"
    (champion_run / "data").mkdir(parents=True)
    write_jsonl(champion_run / "data" / "train.jsonl",
                [chat(f"Tell me about the {t}.", prose(rng, t)) for t in TOPICS])
    write_jsonl(champion_run / "data" / "eval.jsonl",
                [chat(f"Plan the {t} for me.", bullets(rng, t)) for t in TOPICS])
    new = tmp_path / "incoming"
    new.mkdir()
    write_jsonl(new / "2026-q4.jsonl",
                [chat(f"Plan the {t}, step by step.", bullets(rng, t)) for t in TOPICS])
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    models = ModelRegistry(Registry.open(url))
    models.register("planner", "champion-v1", provider="fake", base_model="fake-base-1",
                    eval_run=str(champion_run))
    models.set_alias("planner", "champion", 1, weight=1.0, reason="launch")
    return {"url": url, "champion_train": champion_run / "data" / "train.jsonl", "new": new / "2026-q4.jsonl",
            "models": models, "runs": tmp_path / "runs"}


def pipeline(world: dict, skilled: dict[str, str]) -> Pipeline:
    return Pipeline.model_validate({
        "name": "planner", "provider": {"name": "fake", "options": {"skilled": skilled}},
        "data": {"path": str(world["champion_train"])},
        "training": {"base_model": "fake-base-1", "epochs": 1},
        "poll": {"min_interval_s": 0.01, "max_interval_s": 0.05, "max_wait_s": 60},
        "eval": {"suites": [{"name": "target", "role": "target", "items": "heldout",
                             "graders": [{"name": "five_verb_bullets"}]}], "decoding": {"temperature": 0}},
        "gate": {"rules": "rules-v1", "target_min": 0.1},
        "retrain": {"sources": [str(world["new"].parent / "*.jsonl")], "base_model": "fake-base-2"},
        "run_root": str(world["runs"]), "registry_url": world["url"]})


def test_new_data_beats_champion_and_base_and_goes_to_the_canary(world: dict, loraflow_home: Path) -> None:
    summary = retrain(pipeline(world, {"champion-v1": str(world["champion_train"])}))
    assert summary.winner == "candidate", summary.reason
    assert summary.version == 2 and "beats the newest base and the champion" in summary.reason
    assert world["models"].aliases("planner") == {"champion": (1, 1.0), "challenger": (2, 0.0)}
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    assert manifest["new_data"]["rows"] == len(TOPICS)
    assert manifest["data"]["counts"]["train"] == 2 * len(TOPICS)  # the champion's rows and the new ones
    for label in ("vs-base", "vs-champion"):
        decision = json.loads((summary.run_dir / label / "decision.json").read_text())
        assert decision["outcome"] == "accept", label
    assert "candidate wins" in Artifact.get("retrain-summary").data
    assert json.loads((world["runs"] / "planner" / LEDGER).read_text())  # the file is folded in now
    world["models"].promote("planner", reason="the canary shipped it")
    again = retrain(pipeline(world, {}))  # the same files, the same base: nothing to train on
    assert (again.winner, again.version) == ("champion", None) and again.reason.startswith("nothing new")


def test_a_base_that_caught_up_wins_and_nothing_is_promoted(world: dict, loraflow_home: Path) -> None:
    skilled = {"champion-v1": str(world["champion_train"]), "fake-base-2": str(world["new"])}
    summary = retrain(pipeline(world, skilled))
    assert summary.winner == "base" and summary.version is None
    assert summary.reason.startswith("base caught up")
    assert world["models"].aliases("planner") == {"champion": (1, 1.0)}
    vs_champion = json.loads((summary.run_dir / "vs-champion" / "decision.json").read_text())
    assert vs_champion["outcome"] == "accept"  # it would have beaten the champion: the base is why it stops


def test_the_monitor_alerts_on_a_drifted_window_and_sees_the_base_close_the_gap(world: dict,
                                                                                  loraflow_home: Path,
                                                                                  tmp_path: Path) -> None:
    window = tmp_path / "window.jsonl"
    write_jsonl(window, [json.dumps({"prompt": f"Draft clause {i} of the indemnification agreement between "
                                               "the licensor and licensee, covering liability caps and "
                                               "arbitration."})
                         for i in range(60)])
    config = pipeline(world, {"champion-v1": str(world["champion_train"]), "fake-base-2": str(world["new"])})
    raw = config.model_dump(mode="json") | {"monitor": {"inputs": [str(window)],
                                                         "newest_base": "fake-base-2"}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["monitor", str(tmp_path / "pipeline.yaml")])
    assert result.exit_code == 1, result.output  # an alert fails the command, so cron or CI notices
    lines = result.output.splitlines()
    assert sum(line.startswith("alert drift: input drift on") for line in lines) == 2
    assert any(line.startswith("warn gap: the newest base fake-base-2 has closed the gap") for line in lines)
    report = Path(lines[-1].removeprefix("report: "))
    assert report.read_text().startswith("# Monitor planner: ALERT")
    assert json.loads((report.parent / "manifest.json").read_text())["monitor"]["drift"][0]["level"] == \
        "alert"
    assert "input drift on prompt_tokens" in Artifact.get("monitor-report").data


def test_a_retrain_with_its_runs_in_a_bucket_takes_the_frozen_set_from_there(world: dict, loraflow_home: Path,
                                                                           s3: dict[str, str]) -> None:
    import tempfile

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from tasks.release.models import ModelVersion
    from tasks.runstore import run_path, upload_tree
    from tests.s3 import keys

    champion = run_path("s3://bucket/runs/planner/champion-run")
    upload_tree(world["champion_train"].parent.parent, champion)
    world["champion_train"].parent.joinpath("eval.jsonl").unlink()  # only the bucket has the frozen set now
    with Session(Registry.open(world["url"]).engine) as session:
        session.execute(update(ModelVersion).values(eval_run=str(champion)))
        session.commit()
    leftovers = set(Path(tempfile.gettempdir()).glob("loraflow-run-*"))
    config = pipeline(world, {"champion-v1": str(world["champion_train"])})
    summary = retrain(config.model_copy(update={"run_root": "s3://bucket/runs"}))
    assert summary.winner == "candidate", summary.reason
    run = str(summary.run_dir).removeprefix("s3://bucket/") + "/"
    stored = {key.removeprefix(run) for key in keys(s3, prefix=run)}
    assert {"data/new.jsonl", "data/retrain-input.jsonl", "data/train.jsonl", "data/eval.jsonl",
            "vs-champion/decision.json", "vs-base/decision.json", "manifest.json"} <= stored
    assert "runs/planner/" + LEDGER in keys(s3, prefix="runs/planner/")
    assert set(Path(tempfile.gettempdir()).glob("loraflow-run-*")) == leftovers  # local copies are gone
