"""Streaming validation of chat JSONL in the OpenAI shape, one line at a time (constant memory).

Every problem gets a stable code, the line number and a reason. Codes:
    empty_file, bom, invalid_utf8, invalid_json, truncated_last_line, not_object, unknown_key,
    missing_messages, message_not_object, unknown_role, system_not_first, no_final_assistant,
    empty_content, non_string_content, content_parts, bad_weight          (errors)
    blank_line                                                           (warning)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from providers.errors import DataProblem

ROLES = ("system", "user", "assistant", "tool")
TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
MAX_STORED_PROBLEMS = 1000


class ChatFileValidator:
    """Reads a chat JSONL file once; `examples()` yields the valid ones and collects the problems."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[DataProblem] = []
        self.warnings: list[DataProblem] = []
        self.problem_count = 0
        self.lines = 0
        self.digest = hashlib.sha256()

    def examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (line number, example) for every valid example, in file order."""
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                self.lines = number
                self.digest.update(raw)
                example = self._parse(number, raw)
                if example is not None and self._check_example(number, example):
                    yield number, example
        if self.lines == 0:
            self._problem(1, "empty_file", "the file has no lines")

    def _problem(self, line: int, code: str, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_STORED_PROBLEMS:
            self.problems.append(DataProblem(str(self.path), line, code, reason))

    def _parse(self, number: int, raw: bytes) -> dict[str, Any] | None:
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            self._problem(number, "bom", "the file starts with a UTF-8 byte-order mark; save it without one")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._problem(number, "invalid_utf8", f"not UTF-8 at byte {exc.start}")
            return None
        if not text.strip():
            self.warnings.append(DataProblem(str(self.path), number, "blank_line", "blank line skipped"))
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            # only the last line can lack its newline; broken JSON there means the file was cut short
            code = "invalid_json" if raw.endswith(b"\n") else "truncated_last_line"
            self._problem(number, code, f"{exc.msg} at column {exc.colno}")
            return None
        if not isinstance(value, dict):
            self._problem(number, "not_object", f"expected a JSON object, got {type(value).__name__}")
            return None
        return value

    def _check_example(self, number: int, example: dict[str, Any]) -> bool:
        before = self.problem_count
        for key in sorted(set(example) - TOP_LEVEL_KEYS):
            self._problem(number, "unknown_key", f"unknown key {key!r}; allowed keys: {sorted(TOP_LEVEL_KEYS)}")
        messages = example.get("messages")
        if not isinstance(messages, list) or not messages:
            self._problem(number, "missing_messages", "'messages' must be a non-empty list")
            return False
        for index, message in enumerate(messages):
            self._check_message(number, index, message)
        if isinstance(messages[-1], dict) and messages[-1].get("role") != "assistant":
            self._problem(number, "no_final_assistant", "the last message must come from the assistant")
        return self.problem_count == before

    def _check_message(self, number: int, index: int, message: Any) -> None:
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            self._problem(number, "message_not_object", f"{where} is not an object")
            return
        role = message.get("role")
        if role not in ROLES:
            self._problem(number, "unknown_role", f"{where}.role is {role!r}; allowed values: {list(ROLES)}")
            return
        if role == "system" and index != 0:
            self._problem(number, "system_not_first", f"{where}: a system message may only come first")
        if "weight" in message and message["weight"] not in (0, 1):
            self._problem(number, "bad_weight", f"{where}.weight is {message['weight']!r}; allowed values: 0, 1")
        content = message.get("content")
        if role == "assistant" and content is None and message.get("tool_calls"):
            return
        if isinstance(content, list):
            self._problem(number, "content_parts", f"{where}.content is a list of parts; use a plain string")
        elif not isinstance(content, str):
            self._problem(number, "non_string_content", f"{where}.content must be a string")
        elif not content.strip():
            self._problem(number, "empty_content", f"{where}.content is empty")
