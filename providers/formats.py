"""Training formats: the OpenAI chat shape every provider's format converts from, the values formats return,
and `training_format(provider, model)`, which picks the format a provider reads for a base model.

An example is one parsed JSONL line that passed loraflow's generic validation: `messages` is a
non-empty list of objects with a known role and string content (or tool calls), ending with the
assistant. Each provider's format (`providers/<name>/format.py`, named in the registry) only adds the
rules of its own provider on top of that contract; formats import no SDK, no Prefect and nothing from tasks/.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from providers import PROVIDERS
from providers.errors import ConfigError

Example = dict[str, Any]


class Severity(StrEnum):
    """How a problem weighs for a target: an error stops the run, a warning is reported, info is a note."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class FormatProblem:
    """One rule of the target provider that an example breaks; `code` is stable across releases."""

    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class TrainingFormat:
    """How one provider wants its training lines, and the dataset-level limits it documents.

    `check` returns the provider's rules an example breaks; `convert` turns a checked example into the
    provider's line. Both are pure. `tokenizer_fallback` is used when the catalog does not know the model.
    """

    name: str
    check: Callable[[Example], list[FormatProblem]]
    convert: Callable[[Example], dict[str, Any]]
    tokenizer_fallback: str
    codes: frozenset[str]
    min_examples: int = 1
    recommended_examples: int | None = None
    max_eval_examples: int | None = None

    def to_line(self, example: Example) -> tuple[dict[str, Any], list[FormatProblem]]:
        """The provider's line for `example` and the provider rules it breaks."""
        return self.convert(example), self.check(example)


def turn_roles(messages: list[dict[str, Any]]) -> list[str]:
    """Roles of the conversation turns after the system prompt.

    A tool exchange (assistant tool call, tool results, assistant answer) is one assistant turn, which
    is how providers that require alternation count it.
    """
    roles: list[str] = []
    after_tool = False
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue
        if role == "tool":
            after_tool = True
            continue
        if role == "assistant" and after_tool and roles and roles[-1] == "assistant":
            after_tool = False
            continue
        after_tool = False
        roles.append(role)
    return roles


def alternation_problem(messages: list[dict[str, Any]], severity: Severity, why: str) -> FormatProblem | None:
    """A `role_order` problem when the turns do not start with the user and alternate user/assistant."""
    if _single_turn(messages):
        return None
    roles = turn_roles(messages)
    if roles and roles[0] != "user":
        return FormatProblem("role_order", severity,
                             f"the first turn after the system prompt is {roles[0]!r}, "
                             f"not 'user'; {why}")
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            return FormatProblem("role_order", severity,
                                 f"two {roles[index]!r} turns in a row (turn {index + 1}); "
                                 f"user and assistant must alternate; {why}")
    return None


def _single_turn(messages: list[dict[str, Any]]) -> bool:
    """[system,] user, assistant: the most common shape, checked without building the turn list."""
    count = len(messages)
    if count == 3 and messages[0].get("role") != "system":
        return False
    return 2 <= count <= 3 and messages[-2].get("role") == "user" and messages[-1].get("role") == "assistant"


def uses_tools(example: Example) -> bool:
    return "tools" in example or any(m.get("role") == "tool" or m.get("tool_calls")
                                     for m in example["messages"])


def weighted(example: Example) -> bool:
    return any("weight" in m for m in example["messages"])


def system_text(messages: list[dict[str, Any]]) -> str | None:
    parts = [m["content"] for m in messages if m.get("role") == "system"]
    return "\n\n".join(parts) if parts else None


def call_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as an object (OpenAI sends them as a JSON string)."""
    arguments = call.get("function", {}).get("arguments") or "{}"
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def training_format(provider: str, model: str) -> TrainingFormat:
    """The format `provider` reads for `model`; ConfigError for a provider without a known format."""
    module = _format_modules().get(provider)
    if module is None:
        raise ConfigError(f"no training format for provider {provider!r}; allowed values: "
                          f"{', '.join(sorted(_format_modules()))}")
    return importlib.import_module(module).format_for(model)


def all_codes() -> frozenset[str]:
    """Every problem code any format can report."""
    codes: set[str] = set()
    for module in set(_format_modules().values()):
        loaded = importlib.import_module(module)
        for value in vars(loaded).values():
            if isinstance(value, TrainingFormat):
                codes |= value.codes
    return frozenset(codes)


def _format_modules() -> dict[str, str]:
    return {name: entry.training_format for name, entry in PROVIDERS.items() if entry.training_format}
