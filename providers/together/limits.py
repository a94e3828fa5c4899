"""A Together model's fine-tuning limits: Together's live answer (GET /v1/fine-tunes/models/limits) when asked
and reachable, else the catalog's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import together

from providers.catalog import LoraLimits, ModelFacts, Range, model_facts
from providers.errors import ConfigError, PermanentProviderError, TransientProviderError
from providers.together.client import NAME, translated


def model_limits(client: together.Together, model: str, *, live: bool) -> tuple[ModelFacts, list[str]]:
    """The limits `check_spec` holds a spec against, and the warnings a person should see about them."""
    if not live:
        return _catalog_facts(model), []
    try:
        with translated():
            limits = client.fine_tuning.model_limits(model_name=model)
        return _live_facts(model, limits, model_facts(NAME, model)), []
    except PermanentProviderError as exc:
        if exc.status_code in (400, 404):
            raise ConfigError(f"training.base_model: Together does not fine-tune {model!r} ({exc})") from exc
        raise
    except TransientProviderError as exc:
        fallback = [f"Together's limits endpoint did not answer ({exc}); checked against the catalog"]
        return _catalog_facts(model), fallback


def _catalog_facts(model: str) -> ModelFacts:
    facts = model_facts(NAME, model)
    if facts is None:
        raise ConfigError(f"training.base_model: {model!r} is not in the catalog of Together models and "
                          "the live limits were not asked (provider.options.live_limits)")
    return facts


def _live_facts(model: str, limits: Any, catalog: ModelFacts | None) -> ModelFacts:
    """Together's live model limits as catalog facts (prices and dates still come from the catalog)."""
    lora = limits.lora_training
    kept = {"tokenizer", "parameters_b", "serverless_lora", "serving", "hosting_usd_per_hour",
            "retires", "last_new_job", "replacement", "evidence", "training_usd_per_1m_tokens",
            "inference_usd_per_1m_tokens", "methods"}
    known = catalog.model_dump(include=kept) if catalog else {}
    return ModelFacts(
        provider=NAME, model_id=model, context_tokens=limits.max_seq_length_sft, **known,
        epochs=Range(min=1, max=limits.max_num_epochs),
        learning_rate=Range(min=limits.min_learning_rate, max=limits.max_learning_rate),
        lora=LoraLimits(default_rank=lora.default_rank, max_rank=lora.max_rank,
                        target_modules=lora.target_modules, min_batch_size=lora.min_batch_size,
                        max_batch_size=lora.max_batch_size, max_batch_size_dpo=lora.max_batch_size_dpo),
        as_of=datetime.now(UTC).date(), sources=["GET /v1/fine-tunes/models/limits"],
        origin="Together's limits endpoint")
