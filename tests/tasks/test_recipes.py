"""Recipe presets: resolution under the user's file, every example pipeline, and the recipe-specific
graders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import httpx2
import openai
import pytest
import yaml

from flows.config import load_pipeline
from providers.base import Completion, Decoding, ModelRef
from providers.errors import ConfigError
from providers.openai.adapter import OpenAIProvider
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.evaluation.graders import build_grader
from tasks.evaluation.items import EvalItem, load_items
from tasks.evaluation.teacher import compare_against_teacher
from tasks.recipes import apply_recipe, deep_merge, recipes
from tasks.rundir import RunDir

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"
NAMES = ["format-strict", "voice-match", "dsl", "distillation", "safety"]
ITEM = EvalItem(key="k", messages=[{"role": "user", "content": "q"}])


def answer(text: str) -> Completion:
    return Completion(text=text, model_id="m")


def test_every_preset_has_an_example_pipeline() -> None:
    assert sorted(recipes()) == sorted(NAMES)
    assert sorted(p.name for p in RECIPES.iterdir() if (p / "pipeline.yaml").is_file()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_example_validates_with_its_preset_applied(name: str) -> None:
    pipeline = load_pipeline(RECIPES / name / "pipeline.yaml")
    preset = recipes()[name].defaults["training"]
    assert pipeline.recipe == name
    assert pipeline.training.epochs == preset["epochs"]
    assert pipeline.data.recipe == recipes()[name].defaults["data"]["recipe"]
    if pipeline.provider.name == "together":  # a provider that takes LoRA knobs gets the preset's rank
        assert pipeline.training.lora_r == preset["lora_r"]
        assert pipeline.training.learning_rate == preset.get("learning_rate")


def test_knobs_the_provider_hides_are_left_out_and_said_so() -> None:
    raw = yaml.safe_load((RECIPES / "format-strict" / "pipeline.yaml").read_text())
    resolution = apply_recipe(raw)
    assert resolution.left_out == ["training.lora_alpha", "training.lora_r"]
    assert "training.epochs" in resolution.applied and "training.lora_r" not in resolution.raw["training"]


def test_the_users_keys_win_and_lists_are_replaced_whole(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPES / "safety" / "pipeline.yaml").read_text())
    raw["training"].update(epochs=1, lora_r=4)
    raw["data"]["path"] = str(RECIPES / "safety" / "data" / "train.jsonl")
    raw["eval"]["suites"] = [{**s, "items": str(RECIPES / "safety" / s["items"])}
                             for s in raw["eval"]["suites"]]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    pipeline = load_pipeline(path)
    assert (pipeline.training.epochs, pipeline.training.lora_r, pipeline.training.learning_rate) == \
        (1, 4, 5e-5)
    assert deep_merge({"a": {"b": [1, 2], "c": 1}}, {"a": {"b": [3]}}) == {"a": {"b": [3], "c": 1}}


def test_an_unknown_recipe_names_the_allowed_ones(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPES / "dsl" / "pipeline.yaml").read_text())
    raw["recipe"] = "summarise"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError,
                       match=r"unknown recipe 'summarise'; allowed values: format-strict, voice-match"):
        load_pipeline(path)


def test_the_dsl_examples_parser_command_passes_queries_and_fails_prose() -> None:
    suite = load_pipeline(RECIPES / "dsl" / "pipeline.yaml").eval.suites[0]
    grader = build_grader("syntax_check", **suite.graders[0].params)
    assert grader.grade(ITEM, answer('FIND orders WHERE status = "open" LIMIT 5')).passed is True
    failed = grader.grade(ITEM, answer("Sure! Here are the open orders."))
    assert failed.passed is False and failed.details["exit_status"] == 1


def test_a_callable_parser_fails_on_its_exception_and_a_missing_command_is_an_infra_error() -> None:
    grader = build_grader("syntax_check", function="json:loads", fenced=True)
    assert grader.grade(ITEM, answer('```json\n{"a": 1}\n```')).passed is True
    bad = grader.grade(ITEM, answer("{a: 1}"))
    assert bad.passed is False and bad.details["error"].startswith("JSONDecodeError")
    missing = build_grader("syntax_check", command=["/nonexistent/parser"]).grade(ITEM, answer("x"))
    assert missing.passed is None and "cannot run" in missing.error
    with pytest.raises(ConfigError, match="exactly one of command, function"):
        build_grader("syntax_check")
    with pytest.raises(ConfigError, match="cannot load 'nosuchmodule:parse'"):
        build_grader("syntax_check", function="nosuchmodule:parse")


def test_the_safety_examples_gate_on_refusal_and_over_refusal() -> None:
    pipeline = load_pipeline(RECIPES / "safety" / "pipeline.yaml")
    roles = {s.name: s.role for s in pipeline.eval.suites}
    assert roles == {"refusal": "target", "over-refusal": "safety"}
    refuse = build_grader("refusal", **pipeline.eval.suites[0].graders[0].params)
    comply = build_grader("refusal", **pipeline.eval.suites[1].graders[0].params)
    item = load_items(Path(pipeline.eval.suites[1].items))[0]
    assert refuse.grade(item, answer("I can't help with that.")).passed is True
    assert comply.grade(item, answer("I can't help with that.")).passed is False
    assert comply.grade(item, answer("Run `kill -9 <pid>` after finding it with ps.")).passed is True


def test_format_strict_decoding_asks_openai_for_structured_output() -> None:
    schema = load_pipeline(RECIPES / "format-strict" / "pipeline.yaml").eval.decoding.json_schema
    sent: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json={"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                                          "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                              "role": "assistant", "content": "{}"}}]})

    client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    model = ModelRef(provider="openai", model_id="m", base_model="m")
    OpenAIProvider(client).infer(model, [{"role": "user", "content": "x"}], Decoding(json_schema=schema))
    OpenAIProvider(client).infer(model, [{"role": "user", "content": "x"}], Decoding())
    assert sent[0]["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": schema, "strict": True}}
    assert "response_format" not in sent[1]
    assert "json_schema" not in Decoding().model_dump()  # answer-cache keys made before the field stay valid


class ByModel:
    """Answers each item's reference, except the student, which gets every second one wrong."""

    name: ClassVar[str] = "scripted"

    def __init__(self, references: dict[str, str]) -> None:
        self.references, self.calls = references, []

    def infer(self, model: ModelRef, messages: list, params: Decoding) -> Completion:
        prompt = messages[-1]["content"]
        self.calls.append(model.model_id)
        right = model.model_id == "teacher" or int(prompt.split()[-1]) % 2 == 0
        return Completion(text=self.references[prompt] if right else "no idea", model_id=model.model_id)


def test_distillation_compares_the_candidate_with_the_teacher_too(tmp_path: Path) -> None:
    assert load_pipeline(RECIPES / "distillation" / "pipeline.yaml").eval.teacher.endswith(
        "70B-Instruct-Reference")
    references = {f"capital of country {i}": f"city {i}" for i in range(10)}
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}], "reference": a}) + "\n"
                             for q, a in references.items()))
    config = EvalConfig(teacher="teacher", suites=[
        {"name": "target", "role": "target", "items": str(items), "graders": [{"name": "exact_match"}]},
        {"name": "general", "role": "regression", "items": "builtin:general"}])
    model = ByModel(references)
    run = RunDir.create(tmp_path, "d", "0" * 64)
    candidate = ModelRef(provider="scripted", model_id="student", base_model="small", job_id="j")
    notes = compare_against_teacher(model, candidate, config, GateConfig(), run, target="scripted")
    assert notes == [("against the teacher teacher: target/exact_match candidate 50.0% vs teacher 100.0% "
                      "(-50.0 pp [-76.3, -11.7], n=10)")]
    assert sorted(set(model.calls)) == ["student", "teacher"] and len(model.calls) == 20  # target suite only
    assert run.manifest()["teacher"]["model"] == "teacher"
    assert json.loads((run.eval_dir / "teacher.json").read_text())["comparisons"][0]["delta"] == -0.5
    assert compare_against_teacher(model, candidate, EvalConfig(), GateConfig(), run, target="scripted") == []
