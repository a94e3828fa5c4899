"""Where the prepared data goes: the provider, its base model and the epochs that multiply the bill."""

from __future__ import annotations

from dataclasses import dataclass

from providers.catalog import model_facts
from providers.formats import TrainingFormat, training_format
from tasks.data.tokens import TokenCounter, token_counter


@dataclass(frozen=True)
class DataTarget:
    """The target of a data preparation; `epochs` None means the provider chooses."""

    provider: str
    base_model: str
    epochs: int | None = None

    @property
    def format(self) -> TrainingFormat:
        return training_format(self.provider, self.base_model)

    @property
    def context_tokens(self) -> int | None:
        facts = model_facts(self.provider, self.base_model)
        return facts.context_tokens if facts is not None else None

    def token_counter(self) -> TokenCounter:
        return token_counter(self.provider, self.base_model, self.format.tokenizer_fallback)
