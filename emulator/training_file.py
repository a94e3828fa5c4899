"""What the emulator reads out of an uploaded fine-tuning file: chat JSONL, SFT or DPO shaped.

SFT lines carry `messages`; DPO lines carry `input.messages` plus `preferred_output`. The checks are
the ones a client can act on (the first bad line and why), not the service's full validation: there is
no minimum example count and no token limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from providers.imitation import count_tokens


def first_problem(content: bytes, check: Callable[[Any], str | None]) -> str | None:
    """The first reason JSONL `content` is unusable, as "line N: reason", or None. `check` judges one
    parsed line (the vendor's shape); encoding, JSON syntax and an empty file are judged here."""
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return "file is not UTF-8 text"
    examples = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError:
            return f"line {number}: invalid JSON"
        reason = check(example)
        if reason is not None:
            return f"line {number}: {reason}"
        examples += 1
    return None if examples else "file contains no examples"


def problem(content: bytes) -> str | None:
    """The first reason the content is not chat JSONL, as "line N: reason", or None when it is."""
    return first_problem(content, _chat_problem)


def _chat_problem(example: Any) -> str | None:
    if not isinstance(example, dict):
        return "expected a JSON object"
    if not isinstance(_messages(example), list):
        return "missing 'messages' list"
    return None


def chat_lines(content: bytes) -> list[str]:
    """One chat JSONL line per example; a DPO example ends in its preferred answer."""
    lines = []
    for example in _examples(content):
        if "messages" not in example:
            example = {"messages": _messages(example) + list(example.get("preferred_output") or [])}
        lines.append(json.dumps(example))
    return lines


def content_tokens(content: bytes) -> int:
    """Whitespace tokens over every message's content: what one epoch trains on."""
    return sum(
        count_tokens(str(message.get("content") or ""))
        for example in _examples(content)
        for message in _messages(example) or []
        if isinstance(message, dict)
    )


def _examples(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.decode("utf-8").splitlines() if line.strip()]


def _messages(example: dict[str, Any]) -> Any:
    if "messages" in example:
        return example["messages"]
    source = example.get("input")
    return source.get("messages") if isinstance(source, dict) else None
