"""Eval items: a prompt, an optional reference answer and metadata, read from JSONL.

Two line shapes are accepted:
    {"messages": [..., {"role": "assistant", "content": REF}]}          the chat shape of the held-out split:
                                                                         the final assistant turn is the
                                                                         reference
    {"id": K, "messages": [...], "reference": REF, "metadata": {...}}   an eval file: the prompt, the
                                                                         reference (text, or JSON that graders
                                                                         parse), and per-item facts
                                                                         (answer_type, expect, schema,
                                                                         critical, skill, source, ...)
Every problem is reported with file:line (DataError). `builtin:<name>` names a set shipped in data/.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from providers.base import Message
from providers.errors import ConfigError, DataError, DataProblem

BUILTIN_PREFIX = "builtin:"
_KEYS = frozenset({"id", "messages", "reference", "metadata"})
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


@dataclass(frozen=True)
class EvalItem:
    key: str
    messages: list[Message]
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The last user turn, for reports."""
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
        return ""


def builtin_sets() -> list[str]:
    folder = resources.files(__package__).joinpath("data")
    return sorted(p.name.removesuffix(".jsonl") for p in folder.iterdir() if p.name.endswith(".jsonl"))


def builtin_path(name: str) -> Path:
    """The JSONL file of a shipped item set; ConfigError naming the sets that exist."""
    resource = resources.files(__package__).joinpath("data", f"{name}.jsonl")
    if not resource.is_file():
        raise ConfigError(f"no built-in eval set {name!r}; allowed values: "
                          + ", ".join(BUILTIN_PREFIX + s for s in builtin_sets()))
    return Path(str(resource))


def load_items(path: Path, limit: int | None = None) -> list[EvalItem]:
    """Items from a JSONL file in file order (the first `limit`); DataError lists every bad line."""
    items: list[EvalItem] = []
    problems: list[DataProblem] = []
    seen: dict[str, int] = {}
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such eval item file") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not line.strip():
                continue
            try:
                item = _parse(line)
            except _BadLine as bad:
                problems.append(DataProblem(str(path), number, bad.code, bad.reason))
                continue
            if item.key in seen:
                problems.append(DataProblem(str(path), number, "duplicate_id",
                                            f"id {item.key!r} was already used on line {seen[item.key]}"))
                continue
            seen[item.key] = number
            items.append(item)
    if problems:
        raise DataError(problems)
    if not items:
        raise DataError([DataProblem(str(path), 0, "empty_file", "no eval items")])
    return items


class _BadLine(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _parse(line: str) -> EvalItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLine("invalid_json", f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(raw, dict):
        raise _BadLine("not_an_object", "each line must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _BadLine("unknown_key", f"unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    messages = raw.get("messages")
    if (not isinstance(messages, list) or not messages
            or not all(isinstance(m, dict) and m.get("role") in _ROLES for m in messages)):
        raise _BadLine("bad_messages", "`messages` must be a non-empty list of {role, content} objects with "
                                       f"roles among {', '.join(sorted(_ROLES))}")
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _BadLine("bad_metadata", "`metadata` must be an object")
    reference = raw.get("reference")
    if "reference" not in raw and messages[-1].get("role") == "assistant":
        *messages, final = messages
        reference = final.get("content")
    if not messages or messages[-1].get("role") == "assistant":
        raise _BadLine("no_prompt", "the prompt must end with a user (or tool) turn")
    if reference is not None and not isinstance(reference, str):
        reference = json.dumps(reference, ensure_ascii=False, sort_keys=True)
    key = raw.get("id")
    if key is not None and not (isinstance(key, str) and key):
        raise _BadLine("bad_id", "`id` must be a non-empty string")
    canonical = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    key = key or hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return EvalItem(key=key, messages=messages, reference=reference, metadata=metadata)
