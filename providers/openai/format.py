"""OpenAI chat fine-tuning lines (reference/providers.md 1.5).

The prepared file already is OpenAI's format: one `{"messages": [...], "tools"?, "parallel_tool_calls"?}`
per line, `weight` 0/1 on assistant messages. OpenAI accepts turns that do not alternate and reads
`weight` only on assistant messages, so both are warnings here. At least 10 examples are required.
"""

from __future__ import annotations

from typing import Any

from providers.formats import Example, FormatProblem, Severity, TrainingFormat, alternation_problem

_KEYS = ("messages", "tools", "parallel_tool_calls")


def convert(example: Example) -> dict[str, Any]:
    return {key: example[key] for key in _KEYS if key in example}


def check(example: Example) -> list[FormatProblem]:
    messages = example["messages"]
    order = alternation_problem(messages, Severity.WARNING,
                                "OpenAI trains on it, but Bedrock, Vertex and Together would reject it")
    problems = [order] if order else []
    for index, message in enumerate(messages):
        if "weight" in message and message.get("role") != "assistant":
            problems.append(FormatProblem("weight_ignored", Severity.WARNING,
                                          f"messages[{index}].weight is read only on assistant messages"))
            break
    return problems


FORMAT = TrainingFormat(name="openai-chat", check=check, convert=convert, tokenizer_fallback="o200k_base",
                        codes=frozenset({"role_order", "weight_ignored"}), min_examples=10,
                        recommended_examples=50)


def format_for(model: str) -> TrainingFormat:
    return FORMAT
