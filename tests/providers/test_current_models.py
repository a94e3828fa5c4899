"""Nothing retired is offered: no example, recipe, deployment, README line or product default names a base
model past its retirement date as of the day its catalog was checked; and every refreshed catalog fact
says where it was read."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from providers.catalog import ModelFacts, catalog_checked, catalog_providers, model_facts, models

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "README.md", *sorted((ROOT / "examples").rglob("*")),
           *sorted((ROOT / "deployments").rglob("*")),
           *(path for package in ("cli", "flows", "tasks", "gateway", "emulator", "providers")
             for path in sorted((ROOT / package).rglob("*"))
             if path.suffix in (".py", ".yaml", ".md") and path.name != "catalog.yaml")]
REFRESHED = ("openai", "together", "vertex", "azure_openai")  # checked against the vendors' pages


def check_date(provider: str) -> date:
    """The catalog's own check date; a slice without one counts from its newest entry."""
    return catalog_checked(provider) or max(model_facts(provider, m).as_of for m in models(provider))


def retired() -> dict[str, ModelFacts]:
    found = {}
    for provider in catalog_providers():
        for model in models(provider):
            facts = model_facts(provider, model)
            if facts.retires is not None and facts.retires <= check_date(provider):
                found[model] = facts
    return found


def test_the_retired_list_is_what_the_vendors_say() -> None:
    gone = retired()
    assert {"gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro"} <= set(gone)
    assert "gpt-4.1-nano-2025-04-14" in gone  # an unconfirmed shutdown date still counts as passed
    assert not {"gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite",
                "gpt-4o-mini-2024-07-18"} & set(gone)
    assert gone["gemini-2.5-pro"].replacement == ["gemini-3.5-flash"]


def test_no_example_recipe_or_default_names_a_retired_base() -> None:
    gone = retired()
    pattern = re.compile(r"(?<![\w.:-])(" + "|".join(map(re.escape, sorted(gone, key=len, reverse=True)))
                         + r")(?![\w.:-])")
    offenders = []
    for path in SCANNED:
        if not path.is_file() or path.suffix not in (".py", ".yaml", ".yml", ".md", ".json", ".jsonl"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in pattern.finditer(line):
                facts = gone[match.group(1)]
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {facts.model_id} retired "
                                 f"{facts.retires} (replacement: {', '.join(facts.replacement) or 'none'})")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("provider", REFRESHED)
def test_every_refreshed_service_fact_names_its_page_and_day(provider: str) -> None:
    checked = catalog_checked(provider)
    assert checked == date(2026, 12, 4)
    for model in models(provider):
        facts = model_facts(provider, model)
        for fact in ("retires", "last_new_job", "replacement", "serving", "hosting_usd_per_hour"):
            value = getattr(facts, fact)
            if value in (None, []) or (fact == "serving" and value == "per_token" and provider == "vertex"):
                continue
            seen = facts.evidence.get(fact)
            assert seen is not None, f"{provider} {model}: {fact} has no evidence"
            assert seen.source.startswith("https://") and seen.checked == checked, (model, fact)
            assert seen.confirmed or seen.note, f"{model}: an unconfirmed {fact} must say whose claim it is"


def test_an_unconfirmed_fact_says_so() -> None:
    nano = model_facts("openai", "gpt-4.1-nano-2025-04-14")
    assert nano.unconfirmed("retires") and "dev.to" in nano.unconfirmed("retires")
    assert model_facts("openai", "gpt-4o-mini-2024-07-18").unconfirmed("retires") is None
    pro = model_facts("vertex", "gemini-2.5-pro")
    assert "recommends gemini-3.5-flash" in pro.retirement(date(2026, 12, 4))
    assert model_facts("vertex", "gemini-3.5-flash").retirement(date(2026, 12, 4)) is None
