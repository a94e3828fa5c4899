"""Answers paid for by an earlier run are read back from its run directory when the registry has lost them,
and only for exactly the same request: model, prompt and decoding."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine

from providers.base import Decoding, ModelRef
from providers.errors import PermanentProviderError
from tasks.evaluation.config import EvalConfig
from tasks.evaluation.evaluate import Evaluation, evaluate_and_record
from tasks.evaluation.store import EvalStore
from tasks.rundir import RunDir
from tests.tasks.evaluation.scripted import ScriptedChat
from tests.tasks.evaluation.test_runner import BASE, CANDIDATE, right_for_tuned

ANSWERS = 12  # 6 items, base and candidate


def config(items: Path, **decoding: object) -> EvalConfig:
    return EvalConfig.model_validate({
        "suites": [{"name": "numbers", "items": str(items),
                    "graders": [{"name": "match", "params": {"answer_type": "number"}}]}],
        "decoding": {"temperature": 0, "max_tokens": 64, "seed": 7, **decoding}})


def items(tmp_path: Path, prompt: str = "question") -> Path:
    path = tmp_path / f"items-{prompt}.jsonl"
    lines = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"{prompt} {i}"}], "reference": str(i)}
             for i in range(6)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def evaluate(tmp_path: Path, chat: ScriptedChat, cfg: EvalConfig, *, candidate: ModelRef = CANDIDATE,
             registry: str = "registry") -> Evaluation:
    """One run of pipeline `p` under tmp_path/runs, with its registry database `registry`."""
    store = EvalStore(create_engine(f"sqlite:///{tmp_path / registry}.db"))
    run = RunDir.create(tmp_path / "runs", "p", "c" * 64)
    return evaluate_and_record(chat, BASE, candidate, cfg, run, target="scripted", store=store)


def test_a_rerun_after_registry_loss_pays_for_nothing_and_repairs_the_registry(tmp_path: Path) -> None:
    cfg = config(items(tmp_path))
    first = evaluate(tmp_path, ScriptedChat(right_for_tuned), cfg, registry="lost")
    assert first.usage["calls"] == ANSWERS

    chat = ScriptedChat(right_for_tuned)
    second = evaluate(tmp_path, chat, cfg, registry="fresh")
    assert chat.calls == [] and second.usage["reused"] == second.usage["cache_hits"] == ANSWERS
    assert [(r.key, r.output, r.grades["match"].passed) for r in second.results] == \
           [(r.key, r.output, r.grades["match"].passed) for r in first.results]

    third = evaluate(tmp_path, ScriptedChat(right_for_tuned), cfg, registry="fresh")
    assert (third.usage["calls"], third.usage["reused"], third.usage["cache_hits"]) == (0, 0, ANSWERS)


def test_another_model_prompt_or_decoding_never_takes_an_earlier_answer(tmp_path: Path) -> None:
    evaluate(tmp_path, ScriptedChat(right_for_tuned), config(items(tmp_path)), registry="lost")
    retrained = CANDIDATE.model_copy(update={"model_id": "tuned-2"})
    cases = [(config(items(tmp_path)), retrained, 6),  # the base's answers are reused, not the candidate's
             (config(items(tmp_path), max_tokens=65), CANDIDATE, ANSWERS),
             (config(items(tmp_path), seed=8), CANDIDATE, ANSWERS),
             (config(items(tmp_path, prompt="query")), CANDIDATE, ANSWERS)]
    for n, (cfg, candidate, paid) in enumerate(cases):
        chat = ScriptedChat(right_for_tuned)
        evaluation = evaluate(tmp_path, chat, cfg, candidate=candidate, registry=f"empty-{n}")
        assert len(chat.calls) == paid and evaluation.usage["reused"] == ANSWERS - paid


def test_infra_errors_and_edited_outputs_are_never_reused(tmp_path: Path) -> None:
    cfg = config(items(tmp_path))
    failing = ScriptedChat(right_for_tuned,
                           failures={"question 2": [PermanentProviderError("scripted", "boom")]})
    evaluate(tmp_path, failing, cfg, registry="lost")
    chat = ScriptedChat(right_for_tuned)
    evaluate(tmp_path, chat, cfg, registry="empty")
    assert len(chat.calls) == 1  # the answer that failed the first time

    for outputs in (tmp_path / "runs" / "p").glob("*/eval/outputs.jsonl"):
        outputs.write_text(outputs.read_text().replace('"output": "', '"output": "edited '))
    chat = ScriptedChat(right_for_tuned)
    evaluate(tmp_path, chat, cfg, registry="empty-again")
    assert len(chat.calls) == ANSWERS


def test_a_store_keeps_answering_before_earlier_runs_are_read(tmp_path: Path) -> None:
    cfg = config(items(tmp_path))
    evaluate(tmp_path, ScriptedChat(right_for_tuned), cfg)
    (tmp_path / "runs" / "p").rename(tmp_path / "moved")  # nothing to read back: the registry answers alone
    again = evaluate(tmp_path, ScriptedChat(right_for_tuned), cfg)
    assert (again.usage["calls"], again.usage["reused"], again.usage["cache_hits"]) == (0, 0, ANSWERS)
    assert again.decoding == Decoding(temperature=0, max_tokens=64, seed=7)
