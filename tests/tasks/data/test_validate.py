"""Every contract check has a malformed input and the exact diagnostic it must produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.formats import training_format
from tasks.data.rules import Diagnostic, Diagnostics
from tasks.data.validate import check_example, parse_line
from tests.conftest import write_jsonl
from tests.tasks.data.helpers import diagnostics_of, line

U = {"role": "user", "content": "a"}
A = {"role": "assistant", "content": "b"}


def usable(path: Path, diagnostics: Diagnostics) -> list[tuple[int, dict, bool]]:
    """(line, example, changed) of the usable examples, as the scan sees them."""
    found = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            example = parse_line(number, raw, diagnostics, file_start=number == 1)
            checked = check_example(number, example, diagnostics) if example is not None else None
            if checked is not None and checked.usable:
                found.append((number, example, checked.changed))
    return found


def read(path: Path, **overrides: str) -> tuple[list[int], list[Diagnostic]]:
    diagnostics = Diagnostics(training_format("openai", ""), overrides)
    lines = [number for number, _, _ in usable(path, diagnostics)]
    return lines, diagnostics.kept


def messages(*items: dict) -> str:
    return json.dumps({"messages": list(items)})


CASES = [
    ("{not json", "invalid_json", "Expecting property name enclosed in double quotes at column 2"),
    ("[1, 2]", "not_object", "expected a JSON object, got list"),
    ('"just a string"', "not_object", "expected a JSON object, got str"),
    ('{"messages": []}', "missing_messages", "'messages' must be a non-empty list"),
    ('{"prompt": "x"}', "unknown_key", ("unknown key 'prompt'; allowed keys: ['messages', 'metadata', "
                                       "'parallel_tool_calls', 'tools']")),
    ('{"messages": [1, 2]}', "message_not_object", "messages[0] is not an object"),
    (messages({"role": "human", "content": "a"}, A), "unknown_role",
     "messages[0].role is 'human'; allowed values: ['system', 'user', 'assistant', 'tool']"),
    (messages(U, {"role": "system", "content": "s"}, A), "system_not_first",
     "messages[1]: a system message may only come first"),
    (messages(U), "no_final_assistant", "the last message must come from the assistant"),
    (messages({"role": "user", "content": " "}, A), "empty_content", "messages[0].content is empty"),
    (messages({"role": "user", "content": 5}, A), "non_string_content",
     "messages[0].content must be a string, got int"),
    (messages({"role": "user", "content": [{"type": "text", "text": "a"}]}, A), "content_parts",
     "messages[0].content is a list of parts; loraflow trains on plain text, use a string"),
    (messages(U, {**A, "weight": 2}), "bad_weight", "messages[1].weight is 2; allowed values: 0, 1"),
    (messages(U, {**A, "weight": True}), "bad_weight", "messages[1].weight is True; allowed values: 0, 1"),
    (messages(U, {**A, "mood": "x"}), "unknown_message_key",
     ("messages[1] has unknown key 'mood'; allowed keys: ['content', 'name', 'role', 'tool_call_id', "
      "'tool_calls', 'weight']")),
    (messages(U, {"role": "tool", "tool_call_id": "c9", "content": "sunny"}, A), "tool_unmatched",
     "messages[1]: tool result 'c9' answers no earlier assistant tool call"),
    (messages(U, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}, A), "bad_tool_call",
     "messages[1].tool_calls[0] needs an 'id' and a 'function' with a 'name'"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "metadata": 3}',
     "bad_metadata", "'metadata' must be an object"),
]


@pytest.mark.parametrize(("text", "code", "message"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_each_problem_has_a_code_its_line_and_a_reason(tmp_path: Path, text: str, code: str,
                                                       message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [line(), text, line("b")])
    _, kept = read(path)
    assert Diagnostic(2, code, "error", message) in kept
    assert all(d.line == 2 for d in kept)


def test_encoding_problems(tmp_path: Path) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + line().encode() + b"\n")
    assert read(bom)[1] == [Diagnostic(1, "bom", "error", "the file starts with a UTF-8 byte-order mark; "
                                                          "save it without one")]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(line().encode() + b"\n" + '{"messages": "caf\xe9"}\n'.encode("latin-1"))
    assert read(latin)[1] == [Diagnostic(2, "invalid_utf8", "error", "not UTF-8 at byte 18 of the line")]


def test_truncated_last_line_and_empty_file(tmp_path: Path) -> None:
    truncated = tmp_path / "t.jsonl"
    truncated.write_text(line() + "\n" + line()[:20], encoding="utf-8")
    assert [(d.line, d.code) for d in read(truncated)[1]] == [(2, "truncated_last_line")]
    empty = tmp_path / "e.jsonl"
    empty.write_text("", encoding="utf-8")
    assert diagnostics_of(empty) == [(1, "empty_file", "error")]


def test_a_complete_tool_exchange_is_valid_and_blank_lines_are_warnings(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    tool_use = messages({"role": "user", "content": "weather?"}, {"role": "assistant", "content": None,
                                                                   "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                        {"role": "assistant", "content": "It is sunny."})
    path = write_jsonl(tmp_path / "d.jsonl", [line(), "", tool_use])
    lines, kept = read(path)
    assert lines == [1, 3]
    assert kept == [Diagnostic(2, "blank_line", "warning", "blank line skipped")]


def test_unknown_keys_are_stripped_and_a_downgraded_contract_problem_skips_the_example(
        tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [line(id=7), "{bad", line("c")])
    diagnostics = Diagnostics(training_format("openai", ""),
                              {"unknown_key": "warning", "invalid_json": "warning"})
    examples = usable(path, diagnostics)
    assert [(n, e, changed) for n, e, changed in examples] == [
        (1, json.loads(line()), True), (3, json.loads(line("c")), False)]
    assert [(d.line, d.code, d.severity) for d in diagnostics.kept] == [(1, "unknown_key", "warning"),
                                                                        (2, "invalid_json", "warning")]
    assert diagnostics.errors == 0


def test_a_code_turned_off_is_not_reported(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [messages(U, {"role": "system", "content": "s"}, A)])
    lines, kept = read(path, system_not_first="off")
    assert (lines, kept) == ([1], [])
