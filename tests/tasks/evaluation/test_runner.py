"""The runner: same decoding for both models, stored answers, retries honouring Retry-After, infra errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from providers.base import Decoding, ModelRef
from providers.errors import PermanentProviderError, TransientProviderError
from providers.fake import FakeProvider
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.config import GraderConfig, SuiteConfig
from tasks.evaluation.items import EvalItem
from tasks.evaluation.ratelimit import TokenBucket
from tasks.evaluation.runner import answer, run_suites, to_json_line
from tasks.evaluation.store import EvalStore, output_key
from tasks.evaluation.suites import build_suite
from tests.tasks.evaluation.scripted import ScriptedChat

BASE = ModelRef(provider="scripted", model_id="base", base_model="base")
CANDIDATE = ModelRef(provider="scripted", model_id="tuned", base_model="base", job_id="j1")
MODELS = {"base": BASE, "candidate": CANDIDATE}
DECODING = Decoding(temperature=0, max_tokens=64, seed=7)


def items_file(tmp_path: Path, n: int = 6) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}",
                                        "messages": [{"role": "user", "content": f"question {i}"}],
                                        "reference": str(i)}) + "\n" for i in range(n)))
    return path


def suite(tmp_path: Path, *graders: GraderConfig, n: int = 6):
    config = SuiteConfig(name="numbers", items=str(items_file(tmp_path, n)),
                         graders=list(graders) or [GraderConfig(name="match",
                                                                params={"answer_type": "number"})])
    return build_suite(config)


def right_for_tuned(model_id: str, messages: list) -> str:
    number = str(messages[-1]["content"]).split()[-1]
    return number if model_id == "tuned" else "I am not sure."


def store(tmp_path: Path) -> EvalStore:
    return EvalStore(create_engine(f"sqlite:///{tmp_path / 'registry.db'}"))


def test_both_models_answer_every_item_with_the_same_decoding(tmp_path: Path) -> None:
    chat = ScriptedChat(right_for_tuned)
    results = run_suites(ModelCaller(chat, "scripted"), MODELS, [suite(tmp_path)], DECODING, concurrency=3)
    assert len(results) == 12 and {r.role for r in results} == {"base", "candidate"}
    assert {params for _, _, params in chat.calls} == {DECODING}
    assert all(r.grades["match"].passed is (r.role == "candidate") for r in results)
    line = json.loads(to_json_line(results[0]))
    assert line["grades"]["match"]["grader"] == "match" and line["suite"] == "numbers"


def test_a_resumed_run_pays_only_for_what_is_missing(tmp_path: Path) -> None:
    db = store(tmp_path)
    first = ScriptedChat(right_for_tuned,
                         failures={"question 2": [PermanentProviderError("scripted", "boom")]})
    results = run_suites(ModelCaller(first, "scripted", store=db), MODELS, [suite(tmp_path)], DECODING)
    assert sum(r.error is not None for r in results) == 1
    second = ScriptedChat(right_for_tuned)
    caller = ModelCaller(second, "scripted", store=db)
    again = run_suites(caller, MODELS, [suite(tmp_path)], DECODING)
    assert len(second.calls) == 1 and caller.cache_hits == 11  # only the failed answer is asked again
    third = ScriptedChat(right_for_tuned)
    run_suites(ModelCaller(third, "scripted", store=db), MODELS, [suite(tmp_path)], DECODING)
    assert third.calls == []
    assert [r.output for r in again] == [r.output for r in run_suites(
        ModelCaller(third, "scripted", store=db), MODELS, [suite(tmp_path)], DECODING)]


def test_the_cache_key_separates_model_target_decoding_and_sample() -> None:
    messages = [{"role": "user", "content": "q"}]
    key = output_key("openai@emulator:m", messages, DECODING, 0)
    assert key != output_key("openai:m", messages, DECODING, 0)
    assert key != output_key("openai@emulator:m", messages, DECODING.model_copy(update={"max_tokens": 65}), 0)
    assert key != output_key("openai@emulator:m", messages, DECODING, 1)
    assert key == output_key("openai@emulator:m", [{"content": "q", "role": "user"}], DECODING, 0)


def test_transient_errors_are_retried_and_retry_after_holds_the_shared_limiter(tmp_path: Path) -> None:
    slept: list[float] = []
    limiter = TokenBucket(1000)
    deferred: list[float] = []
    limiter.defer = deferred.append  # record what the caller asks of the limiter
    chat = ScriptedChat(right_for_tuned, failures={"question 1": [
        TransientProviderError("scripted", "429", status_code=429, retry_after=2.5),
        TransientProviderError("scripted", "503", status_code=503)]})
    caller = ModelCaller(chat, "scripted", limiter=limiter, sleep=slept.append)
    result = answer(chat, CANDIDATE, suite(tmp_path).items[1], DECODING, "candidate", caller=caller)
    assert result.output == "1" and result.error is None
    assert deferred == [2.5] and slept[0] == 0.0 and 0 < slept[1] <= 20
    assert (caller.calls, caller.retries) == (3, 2)


def test_an_error_that_outlasts_the_retries_is_an_infra_error(tmp_path: Path) -> None:
    errors = [TransientProviderError("scripted", "503", status_code=503)] * 5
    chat = ScriptedChat(right_for_tuned, failures={"question 0": errors})
    caller = ModelCaller(chat, "scripted", sleep=lambda s: None)
    result = answer(chat, BASE, suite(tmp_path).items[0], DECODING, "base", caller=caller)
    assert result.output is None and result.error == "scripted: 503" and result.grades == {}
    assert caller.failures == 1 and caller.calls == 5


def test_model_errors_score_zero_but_operational_graders_still_measure(tmp_path: Path) -> None:
    chat = ScriptedChat(lambda model_id, messages: "3", finish_reason=lambda m, msgs: "length")
    graded = suite(tmp_path, GraderConfig(name="match"), GraderConfig(name="latency", params={"max_ms": 100}))
    results = run_suites(ModelCaller(chat, "scripted"), MODELS, [graded], DECODING)
    third = next(r for r in results if r.item == "q3")
    assert third.model_error == "truncated at max_tokens"
    assert third.grades["match"].passed is False and third.grades["match"].details == {
        "model_error": "truncated at max_tokens"}
    assert third.grades["latency"].passed is True


def test_samples_use_their_own_cache_entries(tmp_path: Path) -> None:
    chat = ScriptedChat(right_for_tuned)
    results = run_suites(ModelCaller(chat, "scripted"), MODELS, [suite(tmp_path, n=2)], DECODING, samples=3)
    assert len(results) == 12 and {r.sample for r in results} == {0, 1, 2}
    assert len(chat.calls) == 12
    assert sorted({params.seed for _, _, params in chat.calls}) == [7, 8, 9]


def test_the_fake_provider_answers_through_the_runner(tmp_path: Path) -> None:
    fake = FakeProvider()
    item = EvalItem("k", [{"role": "user", "content": "How do I plan a party?"}], "x")
    result = answer(fake, ModelRef(provider="fake", model_id="base-1", base_model="base-1"), item, DECODING,
                    "base")
    assert result.output and result.latency_ms > 0 and [c[0] for c in fake.calls] == ["infer"]


def test_progress_is_reported_per_answer(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    run_suites(ModelCaller(ScriptedChat(right_for_tuned), "scripted"), MODELS, [suite(tmp_path, n=2)],
               DECODING, on_done=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("workers", [1, 8])
def test_results_come_back_in_job_order_whatever_the_concurrency(tmp_path: Path, workers: int) -> None:
    results = run_suites(ModelCaller(ScriptedChat(right_for_tuned), "scripted"), MODELS, [suite(tmp_path)],
                         DECODING, concurrency=workers)
    assert [(r.item, r.role) for r in results][:3] == [("q0", "base"), ("q0", "candidate"), ("q1", "base")]


def test_throttling_is_waited_out_beyond_the_error_attempts(tmp_path: Path) -> None:
    throttles = [TransientProviderError("scripted", "429", status_code=429, retry_after=0.01)] * 8
    chat = ScriptedChat(right_for_tuned, failures={"question 1": throttles})
    caller = ModelCaller(chat, "scripted", sleep=lambda s: None)
    result = answer(chat, CANDIDATE, suite(tmp_path).items[1], DECODING, "candidate", caller=caller)
    assert result.error is None and (caller.calls, caller.retries) == (9, 8)
    impatient = ModelCaller(ScriptedChat(right_for_tuned, failures={"question 1": throttles}), "scripted",
                            throttle_budget_s=0, sleep=lambda s: None)
    assert answer(chat, CANDIDATE, suite(tmp_path).items[1], DECODING, "candidate", caller=impatient).error


def test_a_refused_key_stops_the_evaluation_at_once_instead_of_failing_every_item(tmp_path: Path) -> None:
    """Before: a wrong key made all 544 calls of the quickstart fail with 401, then the run went on to
    decide INVALID and exited 0."""
    refused = [PermanentProviderError("scripted", "HTTP 401: invalid API key", status_code=401)] * 500
    chat = ScriptedChat(right_for_tuned, failures={f"question {i}": list(refused) for i in range(200)})
    with pytest.raises(PermanentProviderError, match="401"):
        run_suites(ModelCaller(chat, "scripted"), MODELS, [suite(tmp_path, n=200)], DECODING, concurrency=2)
    time.sleep(0.2)  # anything still in flight has finished
    assert len(chat.calls) <= 4, f"{len(chat.calls)} calls for one refused key"
