"""Volume, recipe and refusal checks: the wording a person reads."""

from __future__ import annotations

import pytest

from providers.formats import Severity, training_format
from tasks.data.checks import is_refusal, refusal_findings, volume_findings

OPENAI = training_format("openai", "")


@pytest.mark.parametrize(("train", "severity", "start"), [
    (499, Severity.WARNING, "499 training examples: below 500, LoRA rarely changes behaviour reliably"),
    (512, Severity.INFO, "512 training examples: enough for a narrow task such as a fixed format or tone"),
    (1000, Severity.INFO, "1,000 training examples: suits a moderate task"),
    (5000, Severity.INFO, "5,000 training examples: enough for general behaviour"),
])
def test_volume_bands(train: int, severity: Severity, start: str) -> None:
    volume = [f for f in volume_findings(train, 10, None, OPENAI) if f.code == "volume"]
    assert volume[0].severity == severity
    assert volume[0].message.startswith(start)


def test_provider_minimum_recipe_and_eval_limits() -> None:
    found = volume_findings(5, 9000, "general", training_format("vertex", "gemini-3.5-flash"))
    assert [(f.code, f.severity) for f in found] == [
        ("volume", Severity.WARNING), ("volume", Severity.WARNING), ("recipe", Severity.WARNING),
        ("too_many_eval_examples", Severity.ERROR)]
    assert volume_findings(5, 0, None, OPENAI)[0].message == ("openai-chat needs at least 10 training "
                                                              "examples; 5 remain")


def test_refusals() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I cannot share that information.")
    assert not is_refusal("Sorry to hear that! Here is a plan:\n- Rest")
    assert not is_refusal("- Canvass the neighbourhood")


def test_safety_recipe_needs_refusals_and_normal_answers() -> None:
    assert [f.message for f in refusal_findings(0, 600, "safety")] == [
        ("the safety recipe needs refusal examples: 0 of 600 answers (0%) decline; add cases the model "
         "must refuse")]
    assert [f.message for f in refusal_findings(500, 600, "safety")] == [
        "only 17% of answers are normal help; keep at least 30% so the model does not learn to over-refuse"]
    assert refusal_findings(100, 600, "safety") == []
    assert refusal_findings(300, 600, None)[0].message.startswith("50% of answers are refusals")
