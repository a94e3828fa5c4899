from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from providers.catalog import ModelFacts, Range, catalog_providers, model_facts, models, vendor_catalog


def test_every_catalog_entry_parses_and_names_its_sources() -> None:
    assert catalog_providers() == ["azure_openai", "bedrock", "openai", "together", "vertex"]
    for provider in catalog_providers():
        section = vendor_catalog(provider)
        assert section["models"], provider
        for model_id in section["models"]:
            facts = model_facts(provider, model_id)
            assert facts is not None and facts.sources and facts.as_of, model_id
            assert facts.tokenizer, model_id
            # a price is known, or the catalog says where it looked and did not find one
            priced = facts.training_usd_per_1m_tokens or facts.unconfirmed("training_usd_per_1m_tokens")
            assert priced, model_id
            assert (facts.confidence == "recalled") == bool(facts.recalled), model_id


@pytest.mark.parametrize(("provider", "model", "tokenizer"), [
    ("openai", "gpt-4o-mini-2024-07-18", "o200k_base"),
    ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "hf:meta-llama/Llama-3.1-8B-Instruct"),
])
def test_known_models(provider: str, model: str, tokenizer: str) -> None:
    assert model in models(provider)
    assert model_facts(provider, model).tokenizer == tokenizer
    assert model_facts(provider, "no-such-model") is None


def test_openai_models_carry_the_service_dates_and_no_lora_knobs() -> None:
    for model_id in models("openai"):
        facts = model_facts("openai", model_id)
        assert facts.last_new_job == date(2027, 1, 6) and facts.lora is None
        assert facts.learning_rate_multiplier is not None and facts.learning_rate is None
    assert model_facts("openai", "gpt-4o-mini-2024-07-18").retires == date(2027, 1, 14)


def test_together_models_carry_lora_limits_and_an_absolute_learning_rate() -> None:
    for model_id in models("together"):
        facts = model_facts("together", model_id)
        assert facts.lora is not None and facts.lora.default_rank <= facts.lora.max_rank
        assert facts.learning_rate is not None and facts.parameters_b and facts.epochs.max


@pytest.mark.parametrize(("bounds", "inside", "outside", "words"), [
    ({"min": 1, "max": 50}, [1, 50], [0, 51], "1 to 50"),
    ({"min": 0, "exclusive_min": True}, [0.01, 1e6], [0, -1], "more than 0"),
    ({"max": 64}, [1, 64], [65], "at most 64"),
])
def test_ranges_check_and_describe_themselves(bounds: dict, inside: list, outside: list, words: str) -> None:
    allowed = Range(**bounds)
    assert all(allowed.contains(v) for v in inside) and not any(allowed.contains(v) for v in outside)
    assert allowed.describe() == words


def test_recalled_must_name_real_facts() -> None:
    with pytest.raises(ValidationError, match="unknown facts"):
        ModelFacts(provider="p", model_id="m", as_of=date(2026, 1, 1), sources=["s"], confidence="recalled",
                   recalled=["colour"])
