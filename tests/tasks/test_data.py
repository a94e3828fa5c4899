from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.errors import ConfigError, DataError
from tasks.data.config import DataConfig
from tasks.data.prepare import prepare
from tasks.data.split import goes_to_eval
from tasks.data.validate import ChatFileValidator
from tasks.rundir import RunDir, sha256_file
from tests.conftest import write_jsonl


def example(user: str = "hi", answer: str = "- Say hello") -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})


def problems(path: Path) -> list[tuple[int, str]]:
    validator = ChatFileValidator(path)
    list(validator.examples())
    return [(p.line, p.code) for p in validator.problems]


@pytest.mark.parametrize(("line", "code"), [
    ("{not json", "invalid_json"),
    ("[1, 2]", "not_object"),
    ('{"messages": []}', "missing_messages"),
    ('{"prompt": "x"}', "missing_messages"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "id": 3}',
     "unknown_key"),
    ('{"messages": [{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}]}', "unknown_role"),
    (('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},'
      ' {"role": "assistant", "content": "b"}]}'), "system_not_first"),
    ('{"messages": [{"role": "user", "content": "a"}]}', "no_final_assistant"),
    ('{"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "b"}]}', "empty_content"),
    ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]}',
     "non_string_content"),
    (('{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]},'
      ' {"role": "assistant", "content": "b"}]}'), "content_parts"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]}',
     "bad_weight"),
    ("\"just a string\"", "not_object"),
])
def test_each_problem_has_a_code_and_its_line(tmp_path: Path, line: str, code: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [example(), line, example("b")])
    assert (2, code) in problems(path)


def test_encoding_problems(tmp_path: Path) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + example().encode() + b"\n")
    assert problems(bom) == [(1, "bom")]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(example().encode() + b"\n" + '{"messages": "caf\xe9"}\n'.encode("latin-1"))
    assert problems(latin) == [(2, "invalid_utf8")]


def test_truncated_last_line_and_empty_file(tmp_path: Path) -> None:
    truncated = tmp_path / "t.jsonl"
    truncated.write_text(example() + "\n" + example()[:20], encoding="utf-8")
    assert problems(truncated) == [(2, "truncated_last_line")]
    empty = tmp_path / "e.jsonl"
    empty.write_text("", encoding="utf-8")
    assert problems(empty) == [(1, "empty_file")]


def test_blank_lines_are_warnings_and_tool_calls_may_lack_content(tmp_path: Path) -> None:
    tool_call = json.dumps({"messages": [{"role": "user", "content": "w"},
                                         {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                                         {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                                         {"role": "assistant", "content": "It is sunny."}]})
    path = write_jsonl(tmp_path / "d.jsonl", [example(), "", tool_call])
    validator = ChatFileValidator(path)
    assert [n for n, _ in validator.examples()] == [1, 3]
    assert [(w.line, w.code) for w in validator.warnings] == [(2, "blank_line")]


def test_split_is_deterministic_and_order_free(tmp_path: Path) -> None:
    examples = [json.loads(example(f"question {i}", f"- Answer {i}")) for i in range(400)]
    sides = [goes_to_eval(e, salt="s", eval_fraction=0.25) for e in examples]
    assert sides == [goes_to_eval(e, salt="s", eval_fraction=0.25) for e in reversed(examples)][::-1]
    assert 0.18 < sum(sides) / len(sides) < 0.32
    assert sides != [goes_to_eval(e, salt="other", eval_fraction=0.25) for e in examples]


def test_prepare_writes_split_report_and_manifest(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [example(f"q{i}", f"- Do {i}") for i in range(100)])
    run = RunDir.create(tmp_path / "runs", "p", "c" * 64)
    dataset = prepare(DataConfig(path=source), run)
    assert dataset.train_examples + dataset.eval_examples == 100
    assert len(dataset.train_path.read_text().splitlines()) == dataset.train_examples
    manifest = run.manifest()
    assert manifest["data"]["train_sha256"] == sha256_file(dataset.train_path)
    assert manifest["data"]["input_sha256"] == sha256_file(source)
    assert json.loads((run.root / "report.json").read_text())["valid_examples"] == 100
    again = prepare(DataConfig(path=source), RunDir.create(tmp_path / "runs", "p", "c" * 64))
    assert again.sha256 == dataset.sha256


def test_prepare_reports_every_problem_and_leaves_no_split(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [example(), "{bad", example(), "[]"])
    run = RunDir.create(tmp_path / "runs", "p", "c" * 64)
    with pytest.raises(DataError) as raised:
        prepare(DataConfig(path=source, min_train_examples=1), run)
    assert [(p.line, p.code) for p in raised.value.problems] == [(2, "invalid_json"), (4, "not_object")]
    assert str(raised.value).startswith(f"{source}:2: invalid_json:")
    assert sorted(p.name for p in run.data_dir.iterdir()) == []
    assert json.loads((run.root / "report.json").read_text())["problem_count"] == 2


def test_too_few_training_examples(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [example(f"q{i}") for i in range(3)])
    with pytest.raises(ConfigError, match="min_train_examples"):
        prepare(DataConfig(path=source), RunDir.create(tmp_path / "r", "p", "c" * 64))
