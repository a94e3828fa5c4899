"""Readiness before the first run: what would make a run fail, waste money or prove nothing, each with the
fix.

    credentials   the provider's key is reachable (environment variable or Secret block)
    base model    fine-tunable per the catalog, taking new jobs, not retiring soon; the recipe's size fits
    evaluation    suites defined (not the defaults), a regression suite, the recipe's graders, a safety suite
    data          the file exists and holds enough examples for the recipe
    budget        a spend ceiling is set

Nothing here calls a provider or spends anything; facts come from the pipeline file, the catalog and the
environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from flows.config import Pipeline
from providers import provider_class
from providers.catalog import model_facts, models
from providers.errors import ConfigError
from tasks.connection import EMULATOR
from tasks.data.checks import RECIPE_MINIMUM
from tasks.data.config import DataConfig
from tasks.evaluation.config import EvalConfig
from tasks.recipes import Recipe, recipe
from tasks.training.costs import BudgetConfig

Level = Literal["ok", "warn", "fail"]
RETIRING_SOON = timedelta(days=90)


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Readiness:
    """The parts of a pipeline the doctor reads (flows.config.Pipeline has them all)."""

    provider: str
    endpoint: str | None
    options: Mapping[str, Any]
    api_key_secret: str | None
    base_model: str
    data: DataConfig
    eval: EvalConfig
    budget: BudgetConfig
    recipe: str | None = None

    @classmethod
    def of(cls, pipeline: Pipeline) -> Readiness:
        """From a loaded pipeline file."""
        cfg = pipeline.provider
        return cls(provider=cfg.name, endpoint=cfg.endpoint, options=cfg.options,
                   api_key_secret=cfg.api_key_secret, base_model=pipeline.training.base_model,
                   data=pipeline.data, eval=pipeline.eval, budget=pipeline.budget, recipe=pipeline.recipe)


def credentials(r: Readiness, environ: Mapping[str, str]) -> Finding:
    provider = provider_class(r.provider)
    if r.endpoint == EMULATOR or not getattr(provider, "needs_credentials", True):
        return Finding("credentials", "ok", f"{r.provider} at {r.endpoint or 'local'} needs no key")
    if r.api_key_secret:
        return Finding("credentials", "ok",
                       f"key from Prefect Secret block {r.api_key_secret!r} (read at run)")
    options: type[BaseModel] = provider.Options
    field = options.model_fields.get("api_key_env")
    if field is None:
        return Finding("credentials", "warn",
                       f"{r.provider} takes its credentials from the vendor SDK's own chain; "
                       "not checked here",
                       f"check that the {r.provider} SDK finds credentials on this machine")
    variable = r.options.get("api_key_env", field.default)
    if environ.get(variable):
        return Finding("credentials", "ok", f"{variable} is set")
    return Finding("credentials", "fail", f"{variable} is not set",
                   f"export {variable}=..., or store the key in a Prefect Secret block and name it in "
                   "provider.api_key_secret")


def base_model(r: Readiness, spec_recipe: Recipe | None, today: date) -> list[Finding]:
    facts = model_facts(r.provider, r.base_model)
    if facts is None:
        return [Finding("base model", "warn", f"{r.base_model!r} is not in the {r.provider} catalog: its "
                        "limits, price and service dates are unknown", "pick a model the catalog lists "
                        f"(providers/{r.provider}/catalog.yaml), or confirm it is fine-tunable with the "
                        "provider")]
    found = []
    dates = (("takes no new fine-tuning jobs after", facts.last_new_job, "last_new_job"),
             ("retires", facts.retires, "retires"))
    for label, day, fact in dates:
        if day is None:
            continue
        said = " (not confirmed on the vendor's page: see the catalog's evidence)" if facts.unconfirmed(
            fact) else ""
        if day < today:
            found.append(Finding("base model", "fail", f"{r.base_model} {label} {day} (passed){said}",
                                 _move_to(r.provider, facts.replacement)))
        elif day - today <= RETIRING_SOON:
            found.append(Finding("base model", "warn", f"{r.base_model} {label} {day}, within "
                                 f"{RETIRING_SOON.days} days{said}", "plan the move before training more on "
                                 "it: " + _move_to(r.provider, facts.replacement)))
    size = facts.parameters_b
    if spec_recipe and spec_recipe.max_parameters_b and size and size > spec_recipe.max_parameters_b:
        found.append(Finding("base model", "warn", f"the {spec_recipe.name} recipe suits "
                             f"{spec_recipe.model_hint}; {r.base_model} has {size:g}B parameters",
                             "a smaller model usually does as well here for less"))
    return found or [Finding("base model", "ok", f"{r.base_model} is fine-tunable on {r.provider} "
                             f"(catalog as of {facts.as_of})")]


def _move_to(provider: str, replacement: list[str]) -> str:
    """What to do about a retired or retiring base: the vendor's recommended replacement, and the command."""
    if not replacement:
        return "move to a current base model (the vendor names no replacement; see the catalog)"
    tunable = [m for m in replacement if m in models(provider)]
    if tunable:
        return (f"the vendor recommends {' or '.join(replacement)}: "
                f"loraflow migrate PIPELINE --base {tunable[0]}")
    return (f"the vendor recommends {' or '.join(replacement)}, which the catalog does not list as "
            f"fine-tunable on {provider}: loraflow migrate PIPELINE --base MODEL --provider OTHER (loraflow "
            "monitor names one)")


def evaluation(r: Readiness, spec_recipe: Recipe | None) -> list[Finding]:
    config, found = r.eval, []
    if config.suites is None and not config.graders:
        found.append(Finding("evaluation", "fail", "no eval suite defined: the default exact_match on the "
                             "held-out split rarely measures what the fine-tune is for", "define eval.suites "
                             "with a target suite whose primary grader is the goal (the base model is the "
                             "baseline)"))
    suites = config.effective_suites
    if not any(s.role == "regression" for s in suites):
        found.append(Finding("evaluation", "warn", "no regression suite: forgetting goes unnoticed",
                             "add a suite with role: regression (items: builtin:general)"))
    if spec_recipe:
        names = {g.name for s in suites if s.role in ("target", "safety") for g in s.graders or []}
        missing = [g for g in spec_recipe.target_graders if g not in names]
        if missing:
            found.append(Finding("evaluation", "warn", f"the {spec_recipe.name} recipe is judged by "
                                 f"{', '.join(missing)}, which no target suite uses",
                                 f"add {', '.join(missing)} to the target suite"))
        if spec_recipe.safety_suite and not any(s.role == "safety" for s in suites):
            found.append(Finding("evaluation", "fail", "the safety recipe needs a safety suite (refusal) and "
                                 "an over-refusal check", "add a suite with role: safety and the refusal "
                                 "grader, with items expecting both refuse and comply"))
        if spec_recipe.needs_teacher and config.teacher is None:
            found.append(Finding("evaluation", "warn", "distillation must also be compared against the "
                                 "teacher", "set eval.teacher to the model that wrote the training answers"))
    return found or [Finding("evaluation", "ok", f"{len(suites)} suites; the base model is the baseline")]


def data_volume(r: Readiness, spec_recipe: Recipe | None) -> Finding:
    path = r.data.path
    if not path.is_file():
        return Finding("data", "fail", f"{path}: no such file", "point data.path at your chat JSONL")
    with path.open(encoding="utf-8") as handle:
        examples = sum(1 for line in handle if line.strip())
    needed, why = (spec_recipe.examples.min, f"the {spec_recipe.name} recipe") if spec_recipe else (
        RECIPE_MINIMUM.get(r.data.recipe or "", r.data.min_train_examples), "this task")
    if examples < needed:
        typical = f" (typically {spec_recipe.examples.typical:,})" if spec_recipe else ""
        return Finding("data", "warn", f"{examples:,} examples; {why} usually needs {needed:,}+{typical}",
                       "collect more real examples, or generate them: loraflow data generate")
    return Finding("data", "ok", f"{examples:,} examples (before de-duplication)")


def budget(r: Readiness) -> Finding:
    if r.budget.max_usd is None:
        return Finding("budget", "warn", "no budget.max_usd: nothing stops an estimate you did not expect",
                       "set budget.max_usd (and approve_above_usd for a pause in the Prefect UI)")
    return Finding("budget", "ok", f"runs stop before upload above ${r.budget.max_usd:,.2f}")


def diagnose(r: Readiness, *, environ: Mapping[str, str] | None = None, today: date | None = None
             ) -> list[Finding]:
    """Every readiness finding for the pipeline, in the order a person would fix them."""
    try:
        spec_recipe = recipe(r.recipe) if r.recipe else None
    except ConfigError as exc:
        return [Finding("recipe", "fail", str(exc), "use one of the listed names")]
    return [credentials(r, os.environ if environ is None else environ),
            *base_model(r, spec_recipe, today or date.today()), *evaluation(r, spec_recipe),
            data_volume(r, spec_recipe), budget(r)]
