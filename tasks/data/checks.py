"""Volume, diversity and recipe checks from practice, over the whole prepared dataset.

Rules of thumb: below 500 examples LoRA rarely changes behaviour reliably; 500-1,000 suit a narrow task
(a format, a tone), 1,000-5,000 a moderate one, 5,000 or more general behaviour. The safety recipe
needs refusals *and* normal answers, or the model learns to refuse everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from providers.formats import Severity, TrainingFormat

RECIPE_MINIMUM = {"narrow": 500, "moderate": 1000, "general": 5000, "safety": 500}
_REFUSAL = re.compile(
    r"\s*(?:i'?m sorry|i am sorry|sorry, (?:but )?i|i apologi[sz]e|i (?:can ?not|can'?t|can’t|won'?t|won’t|"
    r"must decline|(?:'m|am) (?:not able|unable))|unfortunately,? i (?:can|am)|as an ai\b)", re.IGNORECASE)
_SAFETY_MIN_NORMAL = 0.3
_SAFETY_MIN_REFUSALS = 0.05
_OVER_REFUSAL = 0.2


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str


def is_refusal(answer: str) -> bool:
    """Whether an assistant answer opens by declining (checked on its first 200 characters)."""
    return _REFUSAL.match(answer[:200]) is not None


def volume_findings(train: int, evaluation: int, recipe: str | None, target: TrainingFormat) -> list[Finding]:
    found = []
    if train < target.min_examples:
        found.append(Finding("too_few_examples", Severity.ERROR,
                             f"{target.name} needs at least {target.min_examples} training examples; "
                             f"{train} remain"))
    if train < 500:
        found.append(Finding("volume", Severity.WARNING,
                             f"{train:,} training examples: below 500, LoRA rarely changes behaviour "
                             "reliably; plan 500-1,000 for a narrow task (a format, a tone), "
                             "1,000-5,000 for a moderate one"))
    elif train < 1000:
        found.append(Finding("volume", Severity.INFO,
                             f"{train:,} training examples: enough for a narrow task such as a fixed format "
                             "or tone; a moderate task wants 1,000-5,000, general behaviour 5,000+"))
    elif train < 5000:
        found.append(Finding("volume", Severity.INFO, f"{train:,} training examples: suits a moderate task; "
                                                      "general behaviour changes want 5,000+"))
    else:
        found.append(Finding("volume", Severity.INFO,
                             f"{train:,} training examples: enough for general behaviour"))
    if target.recommended_examples and train < target.recommended_examples:
        found.append(Finding("volume", Severity.WARNING, f"{target.name} recommends at least "
                                                         f"{target.recommended_examples} training examples"))
    if recipe and train < RECIPE_MINIMUM[recipe]:
        found.append(Finding("recipe", Severity.WARNING, f"the {recipe} recipe usually needs "
                                                         f"{RECIPE_MINIMUM[recipe]:,}+ examples; "
                                                         f"{train:,} remain"))
    if target.max_eval_examples is not None and evaluation > target.max_eval_examples:
        found.append(Finding("too_many_eval_examples", Severity.ERROR,
                             f"{target.name} accepts at most {target.max_eval_examples:,} eval examples; "
                             f"there are {evaluation:,} (lower data.eval_fraction)"))
    return found


def refusal_findings(refusals: int, total: int, recipe: str | None) -> list[Finding]:
    share = refusals / total if total else 0.0
    if recipe == "safety":
        found = []
        if share < _SAFETY_MIN_REFUSALS:
            found.append(Finding("recipe", Severity.WARNING,
                                 f"the safety recipe needs refusal examples: {refusals:,} of {total:,} "
                                 f"answers ({share:.0%}) decline; add cases the model must refuse"))
        if 1 - share < _SAFETY_MIN_NORMAL:
            found.append(Finding("recipe", Severity.WARNING,
                                 f"only {1 - share:.0%} of answers are normal help; keep at least "
                                 f"{_SAFETY_MIN_NORMAL:.0%} so the model does not learn to over-refuse"))
        return found
    if share > _OVER_REFUSAL:
        return [Finding("recipe", Severity.WARNING,
                        f"{share:.0%} of answers are refusals; the tuned model may over-refuse (set "
                        "data.recipe: safety if that is the aim)")]
    return []


def diversity(system_keys: np.ndarray, refusals: int, total: int) -> dict[str, float | int]:
    """Distinct system prompts (0 marks an example without one) and the share of refusals."""
    with_system = system_keys[system_keys != 0]
    return {"distinct_system_prompts": int(np.unique(with_system).size),
            "examples_without_system_prompt": int(system_keys.size - with_system.size),
            "refusals": refusals, "refusal_share": round(refusals / total, 4) if total else 0.0}
