"""Teacher-generated data: resumable and cached (a re-run pays only for missing items), costed, and the
output is ordinary chat data that passes the data step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from providers.base import Completion, Decoding, Message, ModelRef
from providers.errors import ConfigError, TransientProviderError
from tasks.connection import open_chat_model
from tasks.data.config import DataConfig
from tasks.data.generate import Teacher, generate
from tasks.data.stage import prepare
from tasks.data.target import DataTarget
from tasks.rundir import RunDir

INPUTS = Path(__file__).resolve().parents[3] / "examples" / "recipes" / "distillation" / "inputs.jsonl"


class ScriptedTeacher:
    """Answers from a script; fails the prompts in `failing` once with a transient error per listed count."""

    name: ClassVar[str] = "scripted"

    def __init__(self, failing: dict[str, int] | None = None) -> None:
        self.calls: list[str] = []
        self.failing = dict(failing or {})

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        prompt = messages[-1]["content"]
        self.calls.append(prompt)
        if self.failing.get(prompt, 0) > 0:
            self.failing[prompt] -= 1
            raise TransientProviderError("scripted", "503 from the script")
        return Completion(text=f"Answer to: {prompt}", model_id=model.model_id, prompt_tokens=10,
                          completion_tokens=5)


def write_inputs(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def test_a_resumed_generation_pays_only_for_the_missing_items(tmp_path: Path) -> None:
    teacher = Teacher("openai", "gpt-4o-2024-08-06", "openai@test")
    out = tmp_path / "teacher.jsonl"
    first = ScriptedTeacher()
    result = generate(write_inputs(tmp_path / "in.jsonl", ["a?", "b?", "c?"]), out, teacher, first)
    assert (result.generated, result.cached, result.calls) == (3, 0, 3)
    assert result.estimate.usd is not None and result.actual_usd == pytest.approx((30 * 3.75 + 15 * 15) / 1e6)
    (tmp_path / "teacher.jsonl.cache.jsonl").open("a").write('{"key": "torn')  # a crash mid-line
    second = ScriptedTeacher()
    resumed = generate(write_inputs(tmp_path / "in.jsonl", ["a?", "b?", "c?", "d?", "e?"]), out, teacher,
                       second)
    assert sorted(second.calls) == ["d?", "e?"] and (resumed.generated, resumed.cached) == (2, 3)
    assert resumed.estimate.input_tokens < result.estimate.input_tokens  # the estimate covers what is missing
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == [f"Answer to: {p}?" for p in "abcde"]
    assert rows[0]["metadata"] == {"teacher": "openai@test:gpt-4o-2024-08-06"}
    summary = json.loads((tmp_path / "teacher.jsonl.generation.json").read_text())
    assert summary["calls"] == 2 and summary["teacher"]["model"] == "gpt-4o-2024-08-06"


def test_a_decoding_change_is_a_different_item_and_failures_are_retried_next_time(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "in.jsonl", ["a?", "b?"])
    out = tmp_path / "t.jsonl"
    teacher = Teacher("scripted", "big", "scripted")
    flaky = ScriptedTeacher(failing={"b?": 99})
    waits: list[float] = []
    result = generate(inputs, out, teacher, flaky, concurrency=1, sleep=waits.append)
    assert result.generated == 1 and len(result.failed) == 1 and "in.jsonl:2" in result.failed[0]
    assert flaky.calls.count("b?") == 5 and len(waits) == 4  # retried with backoff, then given up
    again = ScriptedTeacher()
    assert generate(inputs, out, teacher, again).generated == 1 and again.calls == ["b?"]
    warmer = ScriptedTeacher()
    generate(inputs, out, Teacher("scripted", "big", "scripted", Decoding(temperature=0.7)), warmer)
    assert sorted(warmer.calls) == ["a?", "b?"]


def test_bad_inputs_and_a_price_above_the_limit_stop_before_any_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    teacher = Teacher("openai", "gpt-4o-2024-08-06", "openai@test")
    model = ScriptedTeacher()
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: expected a 'prompt' string"):
        generate(bad, tmp_path / "o.jsonl", teacher, model)
    with pytest.raises(ConfigError, match=r"would cost \$.* the limit is \$0.00"):
        generate(INPUTS, tmp_path / "o.jsonl", teacher, model, max_usd=0.000001)
    assert model.calls == []


@pytest.mark.usefixtures("emulator")
def test_teacher_data_from_the_emulator_passes_the_data_step(tmp_path: Path) -> None:
    teacher = Teacher("together", "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference", "together@emulator",
                      Decoding(max_tokens=256))
    out = tmp_path / "teacher.jsonl"
    model = open_chat_model("together", {}, "emulator", where="--api-key-secret", endpoint_where="--endpoint")
    first = generate(INPUTS, out, teacher, model, concurrency=4)
    again = generate(INPUTS, out, teacher, model)
    assert (first.generated, first.calls, first.failed) == (24, 24, [])
    assert (again.generated, again.cached, again.calls) == (0, 24, 0)
    assert first.actual_usd is not None and 0 < first.actual_usd < first.estimate.usd
    run = RunDir.create(tmp_path / "runs", "distil", "0" * 64)
    dataset = prepare(DataConfig(path=out, eval_fraction=0.25), run,
                      DataTarget("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"))
    report = json.loads((run.root / "report.json").read_text())
    assert report["diagnostics"]["errors"] == 0
    # the emulator's teacher repeats itself: dedupe applies
    removed = sum(report["counts"]["removed"].values())
    assert removed >= 1 and dataset.train_examples + dataset.eval_examples + removed == 24


def test_the_command_prints_the_estimate_and_checks_the_result(tmp_path: Path, loraflow_home: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    inputs = write_inputs(tmp_path / "in.jsonl", ["How do I plan a garden?", "How do I learn Spanish?"])
    args = ["data", "generate", str(inputs), "--out", str(tmp_path / "out.jsonl"), "--teacher-provider",
            "openai", "--teacher-model", "gpt-4o-2024-08-06", "--endpoint", "emulator", "--max-tokens", "200"]
    result = CliRunner().invoke(app, args)
    assert "2 answered, 0 from the cache, 0 failed; 2 calls; estimated $" in " ".join(result.output.split())
    # two examples are below OpenAI's minimum of ten: said, not hidden, and the exit says it too
    assert "check: 1 errors" in result.output and result.exit_code == 1, result.output
    unchecked = CliRunner().invoke(app, [*args, "--no-check", "--out", str(tmp_path / "o1.jsonl")])
    assert unchecked.exit_code == 0, unchecked.output
    refused = CliRunner().invoke(app, [*args, "--max-usd", "0.0000001", "--out", str(tmp_path / "o2.jsonl")])
    assert refused.exit_code == 2 and "the limit is" in refused.output
