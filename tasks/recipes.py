"""Recipe presets (tasks/recipes.yaml): `recipe: <name>` in a pipeline file fills proven defaults.

A preset is data: a fragment of a pipeline file laid under the user's own mapping before validation, so
every key the user writes wins and lists are replaced whole. Knobs the chosen provider hides for the base
model (OpenAI and Bedrock choose the LoRA rank themselves; OpenAI takes a learning-rate multiplier) are left
out of the preset rather than refused, and the resolution says which were left out. The remaining keys are
expectations (volume, model size, graders, a teacher) that `loraflow doctor` holds the pipeline against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from providers.catalog import model_facts
from providers.errors import ConfigError

_LORA_KNOBS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


class Volume(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(ge=1)
    typical: int = Field(ge=1)
    max: int | None = None


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    summary: str
    examples: Volume
    model_hint: str
    max_parameters_b: float | None = None
    target_graders: list[str] = Field(default_factory=list,
                                      description="grader names a target suite should use")
    constrained_decoding: bool = False
    needs_teacher: bool = False
    safety_suite: bool = False
    defaults: dict[str, Any] = Field(default_factory=dict)


@cache
def recipes() -> dict[str, Recipe]:
    text = resources.files("tasks").joinpath("recipes.yaml").read_text(encoding="utf-8")
    return {name: Recipe(name=name, **entry) for name, entry in yaml.safe_load(text).items()}


def recipe(name: str) -> Recipe:
    """The preset called `name`; ConfigError listing the allowed names otherwise."""
    known = recipes()
    if name not in known:
        raise ConfigError(f"recipe: unknown recipe {name!r}; allowed values: {', '.join(known)}")
    return known[name]


def deep_merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `under`: mappings merge key by key, anything else (lists included) in `over` wins."""
    merged = copy.deepcopy(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Resolution:
    """What a recipe did to a pipeline mapping: the merged mapping, the preset keys applied (dotted paths)
    and the preset keys left out because the provider hides them."""

    raw: dict[str, Any]
    applied: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def _paths(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        out += _paths(value, f"{path}.") if isinstance(value, dict) else [path]
    return out


def _hidden_knobs(raw: dict[str, Any]) -> set[str]:
    """Training knobs the catalog says the provider does not take for this base model."""
    provider = (raw.get("provider") or {}).get("name") if isinstance(raw.get("provider"), dict) else None
    base = (raw.get("training") or {}).get("base_model") if isinstance(raw.get("training"), dict) else None
    facts = model_facts(provider, base) if isinstance(provider, str) and isinstance(base, str) else None
    if facts is None:
        return set()
    hidden = set(_LORA_KNOBS) if facts.lora is None else set()
    if facts.learning_rate is None:
        hidden.add("learning_rate")
    return hidden


def apply_recipe(raw: dict[str, Any]) -> Resolution:
    """The pipeline mapping with its recipe's defaults laid under it (unchanged when it names no recipe)."""
    name = raw.get("recipe")
    if name is None:
        return Resolution(raw)
    if not isinstance(name, str):
        raise ConfigError(f"recipe: expected a name; allowed values: {', '.join(recipes())}")
    defaults = copy.deepcopy(recipe(name).defaults)
    user_training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    left_out = []
    for knob in sorted(_hidden_knobs(raw)):
        if knob in defaults.get("training", {}) and knob not in user_training:
            del defaults["training"][knob]
            left_out.append(f"training.{knob}")
    user_paths = set(_paths(raw))
    applied = [p for p in _paths(defaults) if p not in user_paths]
    return Resolution(deep_merge(defaults, raw), applied, left_out)
