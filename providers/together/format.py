"""Together conversational fine-tuning lines (reference/providers.md 2.5).

`{"messages": [...], "tools"?}` with system/user/assistant/tool roles; the conversation starts with the
system or user message and then user and assistant alternate. A file may hold one format only. The
conversational format has no per-message `weight` (loss masking is `train_on_inputs`), so it is dropped.
Together counts tokens with each model's own tokenizer; without it loraflow assumes 4 characters a token.
"""

from __future__ import annotations

from typing import Any

from providers.formats import (
    Example,
    FormatProblem,
    Severity,
    TrainingFormat,
    alternation_problem,
    weighted,
)


def convert(example: Example) -> dict[str, Any]:
    messages = [{key: value for key, value in m.items() if key != "weight"} for m in example["messages"]]
    line: dict[str, Any] = {"messages": messages}
    if "tools" in example:
        line["tools"] = example["tools"]
    return line


def check(example: Example) -> list[FormatProblem]:
    problems = []
    order = alternation_problem(example["messages"], Severity.ERROR,
                                "Together's conversational format requires it")
    if order:
        problems.append(order)
    if weighted(example):
        problems.append(FormatProblem("weight_ignored", Severity.WARNING,
                                      "Together's conversational format has no per-message weight; it is "
                                      "dropped and every assistant turn is trained"))
    return problems


FORMAT = TrainingFormat(name="together-conversational", check=check, convert=convert,
                        tokenizer_fallback="chars/4", codes=frozenset({"role_order", "weight_ignored"}),
                        min_examples=1)


def format_for(model: str) -> TrainingFormat:
    return FORMAT
