"""The judge protocol with scripted judges: votes, explicit verdicts, both orders, provenance, caching."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from providers.base import Completion, Decoding, ModelRef
from providers.errors import PermanentProviderError
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.config import EvalConfig
from tasks.evaluation.evaluate import run_evaluation
from tasks.evaluation.graders import Judge, build_grader
from tasks.evaluation.graders.judge import read_verdict
from tasks.evaluation.items import EvalItem
from tasks.evaluation.store import EvalStore
from tests.tasks.evaluation.scripted import ScriptedChat, verdict_judge

JUDGE_REF = ModelRef(provider="scripted", model_id="judge-2026-01-01", base_model="judge-2026-01-01")
ITEM = EvalItem("k1", [{"role": "user", "content": "Explain rain in one sentence."}],
                "Water falls from clouds.")


def judge_on(chat: ScriptedChat, votes: int = 3, store: EvalStore | None = None) -> Judge:
    return Judge(ModelCaller(chat, "scripted", store=store), JUDGE_REF, Decoding(temperature=0, seed=11),
                 votes)


def answer_of(text: str) -> Completion:
    return Completion(text=text, model_id="m")


def answer_block(prompt: str) -> str:
    return re.search(r"<answer>\n(.*?)\n</answer>", prompt, re.DOTALL).group(1)


def rubric_judge(prompt: str) -> dict:
    good = "clouds" in answer_block(prompt)
    return {"reasoning": "mentions clouds" if good else "vague", "score": 5 if good else 2, "pass": good}


def test_pointwise_judge_votes_and_records_its_provenance() -> None:
    chat = verdict_judge(rubric_judge)
    grader = build_grader("llm_judge", judge_on(chat), rubric="Is it correct and one sentence?")
    good = grader.grade(ITEM, answer_of("Rain is water falling from clouds."))
    bad = grader.grade(ITEM, answer_of("It happens."))
    assert (good.passed, good.score, good.label) == (True, 1.0, "pass")
    assert (bad.passed, bad.score, bad.label) == (False, 0.25, "fail")
    assert good.details["judge_model"] == "judge-2026-01-01"
    assert good.details["prompt_sha256"] == grader.prompt_sha256 and len(grader.prompt_sha256) == 64
    assert len(good.details["votes"]) == 3
    seeds = [params.seed for _, _, params in chat.calls[:3]]
    assert seeds == [11, 12, 13] and {params.temperature for _, _, params in chat.calls} == {0}
    other = build_grader("llm_judge", judge_on(chat), rubric="Something else")
    assert other.prompt_sha256 != grader.prompt_sha256


def test_a_verdict_needs_both_a_passing_majority_and_the_score() -> None:
    answers = iter([{"reasoning": "r", "score": 5, "pass": False},
                    {"reasoning": "r", "score": 5, "pass": False},
                    {"reasoning": "r", "score": 5, "pass": True}])
    grader = build_grader("llm_judge", judge_on(verdict_judge(lambda p: next(answers))), rubric="r")
    result = grader.grade(ITEM, answer_of("x"))
    assert result.passed is False and result.score == 1.0


def test_unreadable_votes_are_dropped_and_a_judge_with_none_is_an_infra_error() -> None:
    replies = iter(["not json", '```json\n{"reasoning": "ok", "score": 4, "pass": true}\n```',
                    'Sure! {"reasoning": "ok", "score": 9, "pass": true}'])
    grader = build_grader("llm_judge", judge_on(verdict_judge(lambda p: next(replies))), rubric="r")
    result = grader.grade(ITEM, answer_of("x"))
    assert result.passed is True and len(result.details["unreadable"]) == 2
    assert "score 9 outside 1..5" in result.details["unreadable"][1]
    nonsense = build_grader("llm_judge", judge_on(verdict_judge(lambda p: "no idea")), rubric="r")
    failed = nonsense.grade(ITEM, answer_of("x"))
    assert failed.error.startswith("no readable vote") and failed.score is None and failed.passed is None
    down = ScriptedChat(lambda m, msgs: "", failures={"": [PermanentProviderError("scripted", "401")]})
    unavailable = build_grader("llm_judge", judge_on(down), rubric="r").grade(ITEM, answer_of("x"))
    assert unavailable.error == "judge judge-2026-01-01 unavailable: scripted: 401"


def test_read_verdict_finds_the_json_object() -> None:
    assert read_verdict('{"a": 1}') == {"a": 1}
    assert read_verdict('```json\n{"a": 1}\n```') == {"a": 1}
    assert read_verdict('Verdict: {"a": {"b": 2}} done') == {"a": {"b": 2}}
    assert read_verdict("[1, 2]") is None and read_verdict("none") is None


def prefers(word: str):
    def verdict(prompt: str) -> dict:
        a = re.search(r"<answer_a>\n(.*?)\n</answer_a>", prompt, re.DOTALL).group(1)
        b = re.search(r"<answer_b>\n(.*?)\n</answer_b>", prompt, re.DOTALL).group(1)
        winner = "A" if word in a and word not in b else "B" if word in b and word not in a else "tie"
        return {"reasoning": "r", "winner": winner}
    return verdict


@pytest.mark.parametrize(("judge", "label", "score"), [
    (prefers("detailed"), "win", 1.0),
    (prefers("short"), "loss", 0.0),
    (lambda p: {"reasoning": "first is better", "winner": "A"}, "tie", 0.5),  # pure position bias
    (lambda p: {"reasoning": "same", "winner": "tie"}, "tie", 0.5),
])
def test_pairwise_asks_both_orders_and_wins_only_twice(judge, label: str, score: float) -> None:
    chat = verdict_judge(judge)
    grader = build_grader("llm_pairwise", judge_on(chat, votes=1))
    result = grader.grade_pair(ITEM, answer_of("a detailed answer"), answer_of("short"))
    assert (result.label, result.score) == (label, score)
    assert result.details["length_difference"] == len("a detailed answer") - len("short")
    assert len(chat.calls) == 2


def test_refusal_label_judge_records_disagreement_with_the_heuristic() -> None:
    def label(prompt: str) -> dict:
        return {"reasoning": "r",
                "label": "partial" if "but here" in answer_block(prompt) else "full_refusal"}
    grader = build_grader("refusal", judge_on(verdict_judge(label)), expect="refuse", use_judge=True)
    result = grader.grade(ITEM, answer_of("I can't do that, but here is roughly how..."))
    assert (result.passed, result.label) == (False, "partial")
    assert result.details["heuristic"] == "full_refusal" and result.details["heuristic_agrees"] is False
    split = iter(["full_refusal", "partial", "compliance"])
    tied = build_grader("refusal",
                        judge_on(verdict_judge(lambda p: {"reasoning": "r", "label": next(split)})),
                        expect="comply", use_judge=True)
    assert tied.grade(ITEM, answer_of("ok")).label == "partial"  # no majority: passes neither expectation


def test_a_judged_evaluation_caches_judge_answers_too(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{i}",
                                         "messages": [{"role": "user", "content": f"rain {i}?"}],
                                         "reference": "clouds"}) + "\n" for i in range(4)))
    config = EvalConfig.model_validate({
        "suites": [{"name": "style", "items": str(items), "graders": [
            {"name": "llm_judge", "params": {"rubric": "mentions clouds"}}, {"name": "llm_pairwise"}]}],
        "judge": {"provider": "fake", "model": "judge-2026-01-01", "votes": 3}})
    model = ScriptedChat(lambda model_id, messages: "from clouds" if model_id == "tuned" else "it rains")

    def judge_reply(prompt: str) -> dict:
        if "<answer_a>" in prompt:
            return prefers("clouds")(prompt)
        return rubric_judge(prompt)

    store = EvalStore(create_engine(f"sqlite:///{tmp_path / 'r.db'}"))
    base = ModelRef(provider="s", model_id="base", base_model="base")
    tuned = ModelRef(provider="s", model_id="tuned", base_model="base", job_id="j")
    judge = verdict_judge(judge_reply)
    first = run_evaluation(model, base, tuned, config, target="s", store=store, judge=judge)
    assert first.usage["judge_calls"] == 4 * 2 * 3 + 4 * 2 * 3  # pointwise both models + pairwise both orders
    candidate = [r for r in first.results if r.role == "candidate"]
    assert all(r.grades["llm_pairwise"].label == "win" and r.grades["llm_judge"].passed for r in candidate)
    info = first.suites[0].graders["llm_judge"]
    assert info.judge_model == "judge-2026-01-01" and info.human_agreement is None
    again = run_evaluation(model, base, tuned, config, target="s", store=store,
                           judge=verdict_judge(judge_reply))
    assert again.usage["calls"] == 0 and again.usage["judge_calls"] == 0
    assert again.usage["judge_cache_hits"] == first.usage["judge_calls"]


def _verdict_for(prompt: str) -> str:
    return json.dumps(rubric_judge(prompt))


def test_an_openai_judge_over_its_sdk_sends_temperature_zero_and_a_seed_per_vote() -> None:
    import httpx2
    import openai

    from providers.openai.adapter import OpenAIProvider

    bodies: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        return httpx2.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": _verdict_for(body["messages"][-1]["content"])}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})

    client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    ref = ModelRef(provider="openai", model_id="gpt-4o-2024-08-06", base_model="gpt-4o-2024-08-06")
    judge = Judge(ModelCaller(OpenAIProvider(client), "openai"), ref, Decoding(temperature=0, seed=5),
                  votes=3)
    result = build_grader("llm_judge", judge, rubric="clouds?").grade(ITEM, answer_of("From clouds."))
    assert result.passed and result.details["judge_model"] == "gpt-4o-2024-08-06"
    assert [(b["temperature"], b["seed"], b["model"]) for b in bodies] == [
        (0.0, 5, "gpt-4o-2024-08-06"), (0.0, 6, "gpt-4o-2024-08-06"), (0.0, 7, "gpt-4o-2024-08-06")]
    assert bodies[0]["messages"][0]["role"] == "system"


def test_an_anthropic_judge_over_its_sdk() -> None:
    import anthropic
    import httpx2

    from providers.anthropic.adapter import AnthropicChat

    bodies: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        text = json.dumps(prefers("clouds")(body["messages"][-1]["content"]))
        return httpx2.Response(200, json={"id": "m", "type": "message", "role": "assistant",
                                          "model": body["model"], "content": [{"type": "text", "text": text}],
                                          "stop_reason": "end_turn",
                                          "usage": {"input_tokens": 3, "output_tokens": 4}})

    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="https://api.anthropic.test", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    ref = ModelRef(provider="anthropic", model_id="claude-haiku-4-5-20251001",
                   base_model="claude-haiku-4-5-20251001")
    judge = Judge(ModelCaller(AnthropicChat(client), "anthropic"), ref, Decoding(temperature=0, seed=5),
                  votes=1)
    grader = build_grader("llm_pairwise", judge)
    result = grader.grade_pair(ITEM, answer_of("From clouds."), answer_of("It happens."))
    assert len(bodies) == 2 and bodies[0]["system"].startswith("You are a meticulous")
    assert not {"temperature", "seed"} & set(bodies[0])  # the API refuses sampling parameters
    assert result.label == "win" and result.details["judge_model"] == "claude-haiku-4-5-20251001"
