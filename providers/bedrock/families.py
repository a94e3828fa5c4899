"""Bedrock's fine-tunable model families, read from the `bedrock.families` section of catalog.yaml.

A family matches base model ids by prefix and names its hyperparameters: Bedrock's key, the TrainingSpec
knob or provider option that sets it, the default and the allowed range (reference/providers.md 3.4). The
adapter builds the string map Bedrock takes from it, and the emulator checks what it receives against
it. No SDK is imported here, so the emulator (a core dependency) can read it without the bedrock extra.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from providers.catalog import Range, vendor_catalog
from providers.errors import ConfigError

Format = Literal["converse", "prompt_completion", "claude"]


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hyperparameter(_Fact):
    """One key of Bedrock's hyperParameters map. Exactly one of `knob` (a TrainingSpec field) and
    `option` (a BedrockOptions field) sets it."""

    knob: str | None = None
    option: str | None = None
    default: float
    min: float
    max: float
    integer: bool = False

    @property
    def allowed(self) -> Range:
        return Range(min=self.min, max=self.max)

    def render(self, value: float) -> str:
        """The string Bedrock takes: an integer without a point, a float in its shortest form."""
        return str(int(value)) if self.integer else f"{value:g}"


class Family(_Fact):
    name: str
    match: list[str] = Field(min_length=1)
    format: Format
    regions: list[str]
    validation: bool = Field(default=True, description="whether jobs take a validation set")
    on_demand_deployment: bool = Field(default=False, description="whether its custom models can be served "
                                       "by an on-demand custom-model deployment (else only provisioned "
                                       "throughput)")
    ended: date | None = Field(default=None, description="end of life: no new jobs")
    ended_note: str = ""
    hyperparameters: dict[str, Hyperparameter]
    as_of: date
    recalled: bool = False
    sources: list[str] = Field(min_length=1)

    def key_for(self, setting: str) -> str | None:
        """Bedrock's key for a TrainingSpec knob or option name, or None when this family hides it."""
        for key, parameter in self.hyperparameters.items():
            if setting in (parameter.knob, parameter.option):
                return key
        return None


def families() -> dict[str, Family]:
    section = vendor_catalog("bedrock").get("families", {})
    return {name: Family(name=name, **entry) for name, entry in section.items()}


def family_for(model: str) -> Family | None:
    """The family whose prefixes match `model`, or None when Bedrock does not fine-tune it (that we know)."""
    for family in families().values():
        if model.startswith(tuple(family.match)):
            return family
    return None


def require_family(model: str) -> Family:
    """The family of `model`; ConfigError naming the allowed prefixes when there is none, or when it ended."""
    family = family_for(model)
    if family is None:
        allowed = ", ".join(f"{p}*" for f in families().values() if f.ended is None for p in f.match)
        raise ConfigError(f"training.base_model: Bedrock does not fine-tune {model!r}; "
                          f"allowed values: {allowed}")
    if family.ended is not None:
        raise ConfigError(f"training.base_model: {model!r} cannot be fine-tuned: {family.ended_note}")
    return family


def hyperparameter_map(family: Family, settings: dict[str, float | None]) -> dict[str, str]:
    """Bedrock's hyperParameters for the given knob/option values (None: the family's default is left to
    Bedrock). ConfigError names the first setting this family hides or holds outside its range."""
    rendered: dict[str, str] = {}
    for setting, value in settings.items():
        if value is None:
            continue
        key = family.key_for(setting)
        where = f"training.{setting}" if setting in _KNOBS else f"provider.options.{setting}"
        if key is None:
            shown = ", ".join(p.knob or f"provider.options.{p.option}"
                              for p in family.hyperparameters.values())
            raise ConfigError(f"{where}: Bedrock exposes no such setting for the {family.name} family; "
                              f"it takes {shown}")
        parameter = family.hyperparameters[key]
        if not parameter.allowed.contains(value) or (parameter.integer and value != int(value)):
            kind = "whole numbers " if parameter.integer else ""
            raise ConfigError(f"{where}: Bedrock allows {kind}{parameter.allowed.describe()} for the "
                              f"{family.name} family ({key}), got {value:g} (catalog, as of {family.as_of})")
        rendered[key] = parameter.render(value)
    return rendered


_KNOBS = frozenset({"epochs", "learning_rate", "batch_size", "lora_r", "lora_alpha", "lora_dropout",
                    "lora_target_modules", "seed"})
