from __future__ import annotations

import pytest

from providers.catalog import _catalog, model_facts, models


def test_every_catalog_entry_parses_and_names_its_sources() -> None:
    for provider, section in _catalog().items():
        for model_id in section["models"]:
            facts = model_facts(provider, model_id)
            assert facts is not None and facts.sources and facts.as_of


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o-mini-2024-07-18")])
def test_known_models(provider: str, model: str) -> None:
    assert model in models(provider)
    assert model_facts(provider, model).tokenizer == "o200k_base"
    assert model_facts(provider, "no-such-model") is None
