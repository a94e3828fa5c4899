"""Facts about fine-tunable base models, read from catalog.yaml (data, each fact with its source and date).

Nothing here calls a provider. The data stage reads context limits and tokenizers; cost estimates read
prices; submission reads retirement dates.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class ModelFacts(BaseModel):
    """What the catalog knows of one base model; None means not known (never guessed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model_id: str
    context_tokens: int | None = Field(default=None, description="longest training example, in tokens")
    tokenizer: str | None = Field(default=None, description="tiktoken encoding name, 'hf:<repo>', or 'chars/<n>'")
    training_usd_per_1m_tokens: float | None = None
    inference_usd_per_1m_tokens: dict[str, float] = Field(default_factory=dict)
    retires: date | None = None
    as_of: date
    sources: list[str] = Field(min_length=1)
    confidence: str = "documented"


@cache
def _catalog() -> dict[str, Any]:
    text = resources.files("providers").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def model_facts(provider: str, model_id: str) -> ModelFacts | None:
    """The catalog entry for a provider's base model, or None when the catalog does not list it."""
    entry = _catalog().get(provider, {}).get("models", {}).get(model_id)
    if entry is None:
        return None
    return ModelFacts(provider=provider, model_id=model_id, **entry)


def models(provider: str) -> list[str]:
    return sorted(_catalog().get(provider, {}).get("models", {}))
