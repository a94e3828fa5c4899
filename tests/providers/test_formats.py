"""Each provider's training format: the converted line matches the vendor's documented shape
(reference/providers.md 1.5, 2.5, 3.5, 4.4, written here as JSON Schemas) and the vendor's rules are
reported with the severity that vendor gives them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from providers.errors import ConfigError
from providers.formats import FormatProblem, Severity, all_codes, training_format, turn_roles

TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}},
        "additionalProperties": False}
OPENAI_LINE = {
    "type": "object", "required": ["messages"], "additionalProperties": False,
    "properties": {"messages": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["role"],
        "properties": {"role": {"enum": ["system", "user", "assistant", "tool"]},
                       "weight": {"enum": [0, 1]}}}},
        "tools": {"type": "array"}, "parallel_tool_calls": {"type": "boolean"}},
}
CONVERSE_LINE = {
    "type": "object", "required": ["schemaVersion", "messages"], "additionalProperties": False,
    "properties": {"schemaVersion": {"type": "string"}, "system": {"type": "array", "items": TEXT},
                   "messages": {"type": "array", "minItems": 2, "items": {
                       "type": "object", "required": ["role", "content"], "additionalProperties": False,
                       "properties": {"role": {"enum": ["user", "assistant"]},
                                      "content": {"type": "array", "items": TEXT, "minItems": 1}}}}},
}
PROMPT_COMPLETION_LINE = {"type": "object", "required": ["prompt", "completion"],
                          "additionalProperties": False,
                          "properties": {"prompt": {"type": "string", "minLength": 1},
                                         "completion": {"type": "string", "minLength": 1}}}
GEMINI_LINE = {
    "type": "object", "required": ["contents"], "additionalProperties": False,
    "properties": {"systemInstruction": {"type": "object", "required": ["parts"],
                                         "properties": {"parts": {"type": "array", "items": TEXT}}},
                   "contents": {"type": "array", "items": {
                       "type": "object", "required": ["role", "parts"], "additionalProperties": False,
                       "properties": {"role": {"enum": ["user", "model"]},
                                      "parts": {"type": "array", "minItems": 1}}}}},
}
TOGETHER_LINE = {"type": "object", "required": ["messages"], "additionalProperties": False,
                 "properties": {"messages": {"type": "array", "items": {
                     "type": "object", "required": ["role", "content"], "not": {"required": ["weight"]}}},
                     "tools": {"type": "array"}}}


def example(*turns: tuple[str, str], weight: bool = False) -> dict:
    messages = [{"role": role, "content": content} for role, content in turns]
    if weight:
        messages[-1]["weight"] = 1
    return {"messages": messages}


SINGLE = example(("system", "Be brief."), ("user", "Plan my week."), ("assistant", "- Rest"))
MULTI = example(("user", "Hi"), ("assistant", "Hello"), ("user", "Plan my week."), ("assistant", "- Rest"))
CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
TOOLS = {"messages": [{"role": "user", "content": "Weather in Oslo?"},
                      {"role": "assistant", "content": None, "tool_calls": [CALL]},
                      {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                      {"role": "assistant", "content": "It is sunny."}]}
TWO_USERS = example(("user", "a"), ("user", "b"), ("assistant", "c"))

TARGETS = [("openai", "gpt-4o-mini-2024-07-18", OPENAI_LINE), ("together", "meta-llama/x", TOGETHER_LINE),
           ("bedrock", "amazon.nova-lite-v1:0", CONVERSE_LINE),
           ("bedrock", "meta.llama3-1-8b-instruct-v1:0", PROMPT_COMPLETION_LINE),
           ("vertex", "gemini-3.5-flash", GEMINI_LINE)]


@pytest.mark.parametrize(("provider", "model", "schema"), TARGETS, ids=[t[0] + ":" + t[1] for t in TARGETS])
@pytest.mark.parametrize("chat", [SINGLE, MULTI], ids=["single-turn", "multi-turn"])
def test_converted_lines_match_the_vendor_shape(provider: str, model: str, schema: dict, chat: dict) -> None:
    line, problems = training_format(provider, model).to_line(chat)
    jsonschema.validate(line, schema)
    assert all(p.severity != Severity.ERROR for p in problems)
    json.dumps(line)


def test_converse_and_gemini_keep_the_system_prompt_apart_and_alternate() -> None:
    converse = training_format("bedrock", "amazon.nova-pro-v1:0").convert(SINGLE)
    assert converse == {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "Be brief."}],
                        "messages": [{"role": "user", "content": [{"text": "Plan my week."}]},
                                     {"role": "assistant", "content": [{"text": "- Rest"}]}]}
    gemini = training_format("vertex", "gemini-3.5-flash").convert(SINGLE)
    assert gemini == {"systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
                      "contents": [{"role": "user", "parts": [{"text": "Plan my week."}]},
                                   {"role": "model", "parts": [{"text": "- Rest"}]}]}


def test_prompt_completion_trains_the_last_answer_and_says_so_for_multi_turn() -> None:
    target = training_format("bedrock", "meta.llama3-1-70b-instruct-v1:0")
    assert target.convert(SINGLE) == {"prompt": "Be brief.\n\nPlan my week.", "completion": "- Rest"}
    line, problems = target.to_line(MULTI)
    assert line == {"prompt": "User: Hi\n\nAssistant: Hello\n\nUser: Plan my week.", "completion": "- Rest"}
    assert [p.code for p in problems] == ["multi_turn_flattened"]


def test_gemini_carries_tool_calls_as_function_parts_that_still_alternate() -> None:
    line, problems = training_format("vertex", "gemini-3.5-flash").to_line(TOOLS)
    assert problems == []
    assert [c["role"] for c in line["contents"]] == ["user", "model", "user", "model"]
    assert line["contents"][1]["parts"] == [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]
    assert line["contents"][2]["parts"] == [{"functionResponse": {"name": "weather",
                                                                  "response": {"content": "sunny"}}}]


@pytest.mark.parametrize(("provider", "model", "severity"), [
    ("openai", "gpt-4o-mini-2024-07-18", Severity.WARNING), ("together", "m", Severity.ERROR),
    ("bedrock", "amazon.nova-lite-v1:0", Severity.ERROR), ("vertex", "gemini-3.5-flash", Severity.ERROR)])
def test_alternation_is_an_error_only_where_the_vendor_requires_it(provider: str, model: str,
                                                                   severity: Severity) -> None:
    problems = training_format(provider, model).check(TWO_USERS)
    assert [(p.code, p.severity) for p in problems] == [("role_order", severity)]
    assert problems[0].message.startswith("two 'user' turns in a row (turn 2); user and assistant must "
                                          "alternate")


def test_vendor_rules_on_tools_and_weights() -> None:
    nova = training_format("bedrock", "amazon.nova-lite-v1:0")
    assert nova.check(TOOLS) == [FormatProblem("tools_unsupported", Severity.ERROR,
                                               "Bedrock fine-tuning does not train on tool calls or "
                                               "tool results")]
    assert [p.code for p in nova.check(example(("user", "a"), ("assistant", "b"), weight=True))] == \
        ["weight_ignored"]
    together = training_format("together", "m")
    assert "weight" not in together.convert(example(("user", "a"), ("assistant", "b"),
                                                    weight=True))["messages"][1]
    assert training_format("openai", "x").check(TOOLS) == []


def test_a_tool_exchange_counts_as_one_assistant_turn() -> None:
    assert turn_roles(TOOLS["messages"]) == ["user", "assistant"]


def test_unknown_provider_is_a_config_error_and_codes_are_listed() -> None:
    with pytest.raises(ConfigError,
                       match="no training format for provider 'acme'; allowed values: azure_openai, "
                             "bedrock, fake"):
        training_format("acme", "m")
    assert {"role_order", "tools_unsupported", "weight_ignored", "multi_turn_flattened"} <= all_codes()
