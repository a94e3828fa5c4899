"""Bedrock model-customization lines (reference/providers.md 3.5).

Nova models read the Converse format: `{"schemaVersion": "bedrock-conversation-2024", "system": [{"text"}],
"messages": [{"role", "content": [{"text"}]}]}`, first turn user, last assistant, strictly alternating,
no tool use (Nova 2 SFT). Llama and other text-to-text models read `{"prompt", "completion"}`: only the
final assistant turn is trained. Bedrock plans with about 6 characters a token.
"""

from __future__ import annotations

from typing import Any

from providers.errors import ConfigError
from providers.formats import (
    Example,
    FormatProblem,
    Severity,
    TrainingFormat,
    alternation_problem,
    system_text,
    uses_tools,
    weighted,
)

SCHEMA_VERSION = "bedrock-conversation-2024"
_CODES = frozenset({"role_order", "tools_unsupported", "weight_ignored", "multi_turn_flattened"})


def convert_converse(example: Example) -> dict[str, Any]:
    line: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    system = system_text(example["messages"])
    if system is not None:
        line["system"] = [{"text": system}]
    line["messages"] = [{"role": m["role"], "content": [{"text": m["content"]}]}
                        for m in example["messages"] if m["role"] in ("user", "assistant")]
    return line


def check_converse(example: Example) -> list[FormatProblem]:
    problems = _common(example)
    order = alternation_problem(example["messages"], Severity.ERROR, "Bedrock's Converse format requires it")
    if order:
        problems.insert(0, order)
    return problems


def convert_prompt_completion(example: Example) -> dict[str, Any]:
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    history = [m for m in messages[:last] if m["role"] != "system"]
    if len(history) == 1 and history[0]["role"] == "user":
        turns = [history[0]["content"]]
    else:
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in history]
    system = system_text(messages[:last])
    return {"prompt": "\n\n".join(([system] if system else []) + turns),
            "completion": messages[last]["content"]}


def check_prompt_completion(example: Example) -> list[FormatProblem]:
    problems = _common(example)
    if sum(1 for m in example["messages"] if m["role"] == "assistant") > 1:
        problems.append(FormatProblem("multi_turn_flattened", Severity.WARNING,
                                      "the prompt/completion format trains only the final assistant turn; "
                                      "earlier turns become part of the prompt"))
    return problems


def _common(example: Example) -> list[FormatProblem]:
    problems = []
    if uses_tools(example):
        problems.append(FormatProblem("tools_unsupported", Severity.ERROR,
                                      "Bedrock fine-tuning does not train on tool calls or tool results"))
    if weighted(example):
        problems.append(FormatProblem("weight_ignored", Severity.WARNING,
                                      "Bedrock has no per-message weight; it is dropped"))
    return problems


CONVERSE = TrainingFormat(name="bedrock-converse", check=check_converse, convert=convert_converse,
                          tokenizer_fallback="chars/6", codes=_CODES, recommended_examples=100)
PROMPT_COMPLETION = TrainingFormat(name="bedrock-prompt-completion", check=check_prompt_completion,
                                   convert=convert_prompt_completion, tokenizer_fallback="chars/6",
                                   codes=_CODES)


def format_for(model: str) -> TrainingFormat:
    """Converse for Nova (and by default); prompt/completion for Llama and other text-to-text models."""
    return PROMPT_COMPLETION if model.startswith("meta.") or ".meta." in model else CONVERSE


def converse_messages(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """OpenAI-shape chat as Converse's (system texts, messages with text blocks)."""
    system, turns = [], []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        text = content if isinstance(content, str) else "".join(
            part.get("text", "") for part in content or [] if isinstance(part, dict))
        if role == "system":
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": [{"text": text}]})
        else:
            raise ConfigError(f"messages: role {role!r} is not sent to Bedrock converse by this adapter; "
                              "allowed values: system, user, assistant")
    return system, turns
