"""Small builders shared by the data-stage tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from providers.formats import Severity
from tasks.data.config import DataConfig, PiiConfig
from tasks.data.stage import check_file
from tasks.data.target import DataTarget

OPENAI = DataTarget("openai", "gpt-4o-mini-2024-07-18", 3)


def chat(user: str = "hi", answer: str = "- Say hello", system: str | None = None,
         **extra: Any) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **extra}


def line(user: str = "hi", answer: str = "- Say hello", **extra: Any) -> str:
    return json.dumps(chat(user, answer, **extra))


def distinct(count: int, prefix: str = "q") -> list[str]:
    """`count` examples that are neither duplicates nor near-duplicates of each other."""
    rng = random.Random(f"{prefix}{count}")
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "hi", "jo",
                 "bu"]
    def words(n: int) -> str:
        return " ".join("".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(n))
    return [line(f"{prefix}{i}: {words(12)}?", f"- {words(8)}\n- {words(8)}") for i in range(count)]


def diagnostics_of(path: Path, target: DataTarget = OPENAI,
                   **config: Any) -> list[tuple[int | None, str, str]]:
    """(line, code, severity) of every line-level diagnostic `check` reports."""
    config.setdefault("pii", PiiConfig(policy="report"))
    report = check_file(DataConfig(path=path, **config), target)
    return [(d["line"], d["code"], d["severity"]) for d in report["diagnostics"]["kept"]]


ERROR, WARNING = str(Severity.ERROR), str(Severity.WARNING)
