"""Hints for the Prefect run form, which renders a parameter's JSON Schema: a field with an `enum` becomes a
dropdown. The pydantic validators stay the single check (their errors list the allowed values); these hints
only shape the schema."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def choices(names: Iterable[str]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` that offers `names` as the string's allowed values, also inside `str | None`."""
    allowed = sorted(names)

    def hint(schema: dict[str, Any]) -> None:
        branches = [b for b in schema.get("anyOf", []) if b.get("type") == "string"]
        for branch in branches or [schema]:
            branch["enum"] = allowed

    return hint
