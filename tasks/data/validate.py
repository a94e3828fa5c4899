"""Streaming validation of chat JSONL in the OpenAI shape, one line at a time (constant memory).

Lines are parsed with orjson; a line it refuses is parsed again by the standard library, which names the
problem. Every problem goes to `Diagnostics` with a stable code, the line number and a reason; the codes and
their default severities are listed in `tasks.data.rules.CODES`. This module checks the contract every
target shares (valid UTF-8 JSON objects, known roles and keys, string content, a final assistant
message, matched tool calls, 0/1 weights); the target's own rules live in `providers.formats`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tasks.data.rules import CODES, Diagnostics

ROLES = ("system", "user", "assistant", "tool")
TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "metadata"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
BOM = b"\xef\xbb\xbf"


def parse_line(number: int, raw: bytes, diagnostics: Diagnostics, *, file_start: bool = False
               ) -> dict[str, Any] | None:
    """The JSON object on one raw line, or None after reporting why there is none. `file_start` marks the
    file's first line, where a byte-order mark is reported and skipped."""
    if file_start and raw.startswith(BOM):
        diagnostics.add(number, "bom", "the file starts with a UTF-8 byte-order mark; save it without one")
        raw = raw[len(BOM):]
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as refused:
        # the standard parser names the problem (and takes what orjson refuses, such as NaN)
        value = _parse_slowly(number, raw, diagnostics, str(refused))
        if value is _INVALID:
            return None
    if not isinstance(value, dict):
        diagnostics.add(number, "not_object", f"expected a JSON object, got {type(value).__name__}")
        return None
    return value


_INVALID = object()


def _parse_slowly(number: int, raw: bytes, diagnostics: Diagnostics, refused: str) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"))
        if "surrogate" not in refused:
            return value
        # a lone UTF-16 surrogate escape: the text could not be written back as UTF-8
        diagnostics.add(number, "invalid_json", refused.split(":")[0])
    except UnicodeDecodeError as exc:
        diagnostics.add(number, "invalid_utf8", f"not UTF-8 at byte {exc.start + 1} of the line")
    except RecursionError:
        diagnostics.add(number, "invalid_json", "nested too deeply")
    except json.JSONDecodeError as exc:
        if raw.isspace() or not raw:
            diagnostics.add(number, "blank_line", "blank line skipped")
        else:
            # only the last line can lack its newline; broken JSON there means the file was cut short
            code = "invalid_json" if raw.endswith(b"\n") else "truncated_last_line"
            diagnostics.add(number, code, f"{exc.msg} at column {exc.colno}")
    return _INVALID


class ExampleCheck:
    """Reports one example's problems; `usable` is False after a contract problem, `changed` after a
    key was removed."""

    def __init__(self, number: int, diagnostics: Diagnostics) -> None:
        self.number, self.diagnostics = number, diagnostics
        self.usable, self.changed = True, False

    def __call__(self, code: str, message: str) -> None:
        if self.diagnostics.add(self.number, code, message) is not None and CODES[code][1]:
            self.usable = False

    def fail(self) -> ExampleCheck:
        self.usable = False
        return self


def check_example(number: int, example: dict[str, Any], diagnostics: Diagnostics) -> ExampleCheck:
    """Check one parsed line against the shared chat contract. Unknown keys are reported and removed
    from `example` in place."""
    report = ExampleCheck(number, diagnostics)
    if not TOP_LEVEL_KEYS.issuperset(example):
        report.changed = True
        for key in sorted(set(example) - TOP_LEVEL_KEYS):
            report("unknown_key", f"unknown key {key!r}; allowed keys: {sorted(TOP_LEVEL_KEYS)}")
            del example[key]
    if "metadata" in example and not isinstance(example["metadata"], dict):
        report("bad_metadata", "'metadata' must be an object")
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        report("missing_messages", "'messages' must be a non-empty list")
        return report.fail()
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            report("message_not_object", f"messages[{index}] is not an object")
            return report.fail()
        _check_message(index, message, open_calls, report)
    last = messages[-1]
    if last.get("role") != "assistant":
        report("no_final_assistant", "the last message must come from the assistant")
    return report


def _check_message(index: int, message: dict[str, Any], open_calls: set[str], report: ExampleCheck) -> None:
    if not MESSAGE_KEYS.issuperset(message):
        report.changed = True
        for key in sorted(set(message) - MESSAGE_KEYS):
            report("unknown_message_key", f"messages[{index}] has unknown key {key!r}; allowed keys: "
                                          f"{sorted(MESSAGE_KEYS)}")
            del message[key]
    role = message.get("role")
    if role not in ROLES:
        report("unknown_role", f"messages[{index}].role is {role!r}; allowed values: {list(ROLES)}")
        return
    if role == "system" and index != 0:
        report("system_not_first", f"messages[{index}]: a system message may only come first")
    if "weight" in message and (type(message["weight"]) not in (int, float)
                                or message["weight"] not in (0, 1)):
        report("bad_weight", f"messages[{index}].weight is {message['weight']!r}; allowed values: 0, 1")
    if role == "assistant" and "tool_calls" in message:
        _check_tool_calls(index, message["tool_calls"], open_calls, report)
        if message.get("content") in (None, ""):
            return
    elif role == "tool":
        call_id = message.get("tool_call_id")
        if call_id not in open_calls:
            report("tool_unmatched", f"messages[{index}]: tool result {call_id!r} answers no earlier "
                                     "assistant tool call")
        open_calls.discard(call_id)
    content = message.get("content")
    if type(content) is not str or not content or content.isspace():
        _content_problem(index, content, report)


def _content_problem(index: int, content: Any, report: ExampleCheck) -> None:
    where = f"messages[{index}]"
    if isinstance(content, str):
        report("empty_content", f"{where}.content is empty")
    elif isinstance(content, list):
        report("content_parts", f"{where}.content is a list of parts; loraflow trains on plain text, "
                                "use a string")
    else:
        report("non_string_content", f"{where}.content must be a string, got {type(content).__name__}")


def _check_tool_calls(index: int, calls: Any, open_calls: set[str], report: ExampleCheck) -> None:
    where = f"messages[{index}]"
    if not isinstance(calls, list) or not calls:
        report("bad_tool_call", f"{where}.tool_calls must be a non-empty list")
        return
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str) or not function.get("name"):
            report("bad_tool_call", f"{where}.tool_calls[{position}] needs an 'id' and a 'function' "
                                    "with a 'name'")
            continue
        if not isinstance(function.get("arguments", "{}"), str):
            report("bad_tool_call", f"{where}.tool_calls[{position}].function.arguments must be "
                                    "a JSON string")
        open_calls.add(call["id"])
