"""The evaluation step without Prefect: the fake provider fine-tunes, both models answer, the gate decides,
and the run directory holds outputs, report, decision and lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from providers.base import JobState, ModelRef, PreparedDataset, TrainingSpec
from providers.errors import DataError
from providers.fake import FakeProvider
from tasks.evaluation.calibration import calibrate, describe, load_labels
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.config import EvalConfig
from tasks.evaluation.evaluate import record_evaluation, run_evaluation
from tasks.evaluation.gate import decide, record_decision
from tasks.evaluation.graders import Judge, build_grader
from tasks.evaluation.store import DecisionRecord, EvalStore
from tasks.rundir import RunDir
from tests.conftest import QUICKSTART
from tests.tasks.evaluation.scripted import verdict_judge

DATA = QUICKSTART / "data" / "bullets.jsonl"


@pytest.fixture(scope="module")
def tuned() -> tuple[FakeProvider, ModelRef, ModelRef]:
    provider = FakeProvider()
    spec = TrainingSpec(base_model="base-1")
    job = provider.create_job(spec, provider.upload(PreparedDataset(train_path=DATA, sha256="f" * 64,
                                                                    train_examples=640)), idempotency_key="k")
    status = provider.get_job(job)
    while status.state is not JobState.SUCCEEDED:
        status = provider.get_job(job)
    return provider, ModelRef(provider="fake", model_id="base-1", base_model="base-1"), status.model


def test_a_run_directory_holds_outputs_report_decision_and_lineage(tuned, tmp_path: Path) -> None:
    provider, base, candidate = tuned
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(DATA.read_text().splitlines(keepends=True)[-80:]))
    config = EvalConfig.model_validate({"suites": [
        {"name": "target", "items": str(held_out), "graders": [{"name": "five_verb_bullets"}],
         "slice_by": "skill"},
        {"name": "general", "role": "regression", "items": "builtin:general", "slice_by": "skill"}]})
    store = EvalStore(create_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    evaluation = run_evaluation(provider, base, candidate, config, target="fake", store=store)
    run = RunDir(tmp_path / "run")
    record_evaluation(evaluation, run)
    decision = decide(evaluation)
    report = record_decision(decision, evaluation, run, store)

    assert decision.outcome == "accept"
    lines = (run.eval_dir / "outputs.jsonl").read_text().splitlines()
    assert len(lines) == 2 * (80 + 150)
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["evaluation"]["suites"]["general"]["graders"]["match"]["version"] == "1"
    assert manifest["decision"] == {"outcome": "accept", "rules_version": "rules-v2",
                                    "primary": "target/five_verb_bullets", "file": "decision.json",
                                    "report": "eval/report.md"}
    assert json.loads((run.root / "decision.json").read_text())["thresholds"]["target_min"] == 0.08
    assert report == (run.eval_dir / "report.md").read_text()
    for heading in ("## Results", "## What this evaluation cannot show", "## Why: the rules in order",
                    "## Telling items", "## The run", "Slices (exploratory, never gating)"):
        assert heading in report
    assert "| general | regression | match [arithmetic] |" in report
    assert "floor effect" in report
    with Session(store.engine) as session:
        record = session.scalars(select(DecisionRecord)).one()
    assert (record.outcome, record.rules_version, record.candidate) == \
        ("accept", "rules-v2", candidate.model_id)


def labels(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "q"}], **row}) + "\n"
                            for row in rows))
    return path


def judge_answering(verdict) -> Judge:
    ref = ModelRef(provider="s", model_id="judge-2026-01-01", base_model="judge-2026-01-01")
    return Judge(ModelCaller(verdict_judge(verdict), "s"), ref, votes=1)


def test_calibrating_a_pairwise_judge(tmp_path: Path) -> None:
    rows = [{"output_a": "long and good", "output_b": "bad", "label": "a"},
            {"output_a": "bad", "output_b": "good", "label": "b"},
            {"output_a": "same", "output_b": "same", "label": "tie"},
            {"output_a": "good", "output_b": "good too", "label": "tie"}]

    def prefers_good(prompt: str) -> dict:
        a = prompt.split("<answer_a>\n")[1].split("\n</answer_a>")[0]
        b = prompt.split("<answer_b>\n")[1].split("\n</answer_b>")[0]
        return {"reasoning": "r", "winner": "A" if "good" in a and "good" not in b else
                "B" if "good" in b and "good" not in a else "tie"}

    grader = build_grader("llm_pairwise", judge_answering(prefers_good))
    result = calibrate(grader, load_labels(labels(tmp_path, rows), "llm_pairwise"))
    assert (result.n, result.agreement, result.kappa) == (4, 1.0, 1.0)
    assert result.confusion == {"win": {"win": 1}, "loss": {"loss": 1}, "tie": {"tie": 2}}
    assert describe(result.kappa) == "almost perfect" and describe(0.65) == "substantial"


def test_calibrating_a_refusal_judge_and_bad_label_files(tmp_path: Path) -> None:
    rows = [{"output": "No.", "label": "full_refusal", "expect": "refuse"},
            {"output": "Sure, here", "label": "compliance", "expect": "comply"},
            {"output": "Well, partly", "label": "partial", "expect": "refuse"}]
    judge = judge_answering(lambda p: {"reasoning": "r",
                                       "label": "full_refusal" if "No." in p else "compliance"})
    result = calibrate(build_grader("refusal", judge, use_judge=True),
                       load_labels(labels(tmp_path, rows), "refusal"))
    assert result.n == 3 and result.agreement == pytest.approx(2 / 3)
    bad = labels(tmp_path, [{"output": "x", "label": "maybe"}, {"label": "pass"},
                            {"output": "y", "label": "pass", "extra": 1}])
    with pytest.raises(DataError) as raised:
        load_labels(bad, "llm_judge")
    problems = [(p.line, p.reason) for p in raised.value.problems]
    assert problems[0] == (1, "label 'maybe'; allowed values: pass, fail")
    assert problems[1] == (2, "needs output")
    assert problems[2][0] == 3 and "extra: unknown key" in problems[2][1]
