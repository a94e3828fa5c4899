"""Vertex AI Gemini supervised-tuning lines (reference/providers.md 4.4).

`{"systemInstruction": {"role": "system", "parts": [{"text"}]}, "contents": [{"role": "user"|"model",
"parts": [...]}]}`. Tool calls become `functionCall` parts of a model turn and tool results
`functionResponse` parts of a user turn, so a tool exchange keeps the alternation Gemini requires.
At most 5,000 validation examples; about 4 characters a token when no tokenizer is available.
"""

from __future__ import annotations

from typing import Any

from providers.formats import (
    Example,
    FormatProblem,
    Severity,
    TrainingFormat,
    alternation_problem,
    call_arguments,
    system_text,
    weighted,
)


def convert(example: Example) -> dict[str, Any]:
    line: dict[str, Any] = {}
    system = system_text(example["messages"])
    if system is not None:
        line["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for message in example["messages"]:
        role = message["role"]
        if role == "system":
            continue
        if role == "tool":
            name = names.get(message.get("tool_call_id", ""), message.get("name", "tool"))
            _append(contents, "user", {"functionResponse": {"name": name,
                                                            "response": {"content": message["content"]}}})
            continue
        vendor_role = "model" if role == "assistant" else "user"
        if message.get("content"):
            _append(contents, vendor_role, {"text": message["content"]})
        for call in message.get("tool_calls") or []:
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
            _append(contents, vendor_role, {"functionCall": {"name": names[call.get("id", "")],
                                                             "args": call_arguments(call)}})
    line["contents"] = contents
    return line


def _append(contents: list[dict[str, Any]], role: str, part: dict[str, Any]) -> None:
    # consecutive results of parallel tool calls belong in one turn
    if contents and contents[-1]["role"] == role and ("functionResponse" in part or "functionCall" in part):
        contents[-1]["parts"].append(part)
    else:
        contents.append({"role": role, "parts": [part]})


def check(example: Example) -> list[FormatProblem]:
    problems = []
    order = alternation_problem(example["messages"], Severity.ERROR,
                                "Gemini tuning requires user and model turns "
                                "to alternate")
    if order:
        problems.append(order)
    if weighted(example):
        problems.append(FormatProblem("weight_ignored", Severity.WARNING,
                                      "Gemini tuning has no per-message weight; it is dropped"))
    return problems


FORMAT = TrainingFormat(name="vertex-gemini", check=check, convert=convert, tokenizer_fallback="chars/4",
                        codes=frozenset({"role_order", "weight_ignored"}), recommended_examples=100,
                        max_eval_examples=5000)


def format_for(model: str) -> TrainingFormat:
    return FORMAT
