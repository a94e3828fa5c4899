"""Facts about fine-tunable base models, read from each provider's catalog.yaml (data, each fact with its
source and date).

A catalog.yaml says when it was last checked against the vendor's pages (`checked`), and each model may
hold `evidence`: for a fact (a retirement date, the replacement, the serving mode, a limit) the page it was
read on, the day, and `confirmed: false` with the claim's own source where the vendor's page did not show it.

Nothing here calls a provider. The data stage reads context limits and tokenizers; cost estimates read
prices; each provider's `check_spec` reads hyperparameter ranges, LoRA limits and the service dates, and
`check_training_knobs` holds a TrainingSpec against them (against a provider's live limits too, once an
adapter has put those into a ModelFacts with its own `origin`).
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers import PROVIDERS
from providers.base import TrainingSpec
from providers.errors import ConfigError


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Range(_Fact):
    """An allowed interval for a knob; a missing bound is unbounded."""

    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False

    def contains(self, value: float) -> bool:
        above = self.min is None or (value > self.min if self.exclusive_min else value >= self.min)
        return above and (self.max is None or value <= self.max)

    def describe(self) -> str:
        low = None if self.min is None else f"{self.min:g}"
        if low is not None and self.max is not None and not self.exclusive_min:
            return f"{low} to {self.max:g}"
        parts = [] if low is None else [f"more than {low}" if self.exclusive_min else f"at least {low}"]
        parts += [] if self.max is None else [f"at most {self.max:g}"]
        return " and ".join(parts) or "any value"


class LoraLimits(_Fact):
    """What a provider lets you choose about the adapter (absent when it chooses everything itself)."""

    default_rank: int = Field(ge=1)
    max_rank: int = Field(ge=1)
    target_modules: list[str] = Field(min_length=1)
    min_batch_size: int | None = Field(default=None, ge=1)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_batch_size_dpo: int | None = Field(default=None, ge=1)


Method = Literal["sft", "dpo"]
Serving = Literal["per_token", "dedicated_endpoint", "deployment"]


class Evidence(_Fact):
    """Where one fact was read. `confirmed: false`: the vendor's own page did not show it; `note` then says
    where the claim comes from."""

    source: str = Field(min_length=1, description="the page (a URL) the fact was read on")
    checked: date
    confirmed: bool = True
    note: str = ""


class ModelFacts(_Fact):
    """What the catalog knows of one base model; None means not known (never guessed).

    `recalled` names the facts that come from memory rather than a document; `confidence` is "recalled"
    when any fact is.
    """

    provider: str
    model_id: str
    context_tokens: int | None = Field(default=None, description="longest training example, in tokens")
    tokenizer: str | None = Field(
        default=None, description="tiktoken encoding name, 'hf:<repo>', or 'chars/<n>'")
    parameters_b: float | None = Field(
        default=None, description="size in billions (prices go by size bracket)")
    methods: list[Method] = Field(default_factory=lambda: ["sft"], description="training methods offered")
    epochs: Range | None = None
    batch_size: Range | None = None
    learning_rate: Range | None = Field(default=None, description="absolute learning rate")
    learning_rate_multiplier: Range | None = Field(
        default=None, description="a multiple of the provider's rate")
    lora: LoraLimits | None = Field(default=None, description="None: the provider exposes no LoRA knobs")
    serverless_lora: bool | None = Field(default=None, description="a LoRA fine-tune is served per token")
    serving: Serving | None = Field(
        default=None, description="how a tuned model answers: per_token (by its id), dedicated_endpoint "
                                  "(billed per minute or hour while up), deployment (made per model, billed "
                                  "per hour where the deployment type has a hosting fee)")
    hosting_usd_per_hour: float | None = Field(
        default=None, description="what hosting a tuned model costs per hour where it is not served "
                                  "per token (a dedicated endpoint, provisioned throughput)")
    training_usd_per_1m_tokens: float | None = None
    inference_usd_per_1m_tokens: dict[str, float] = Field(default_factory=dict)
    last_new_job: date | None = Field(
        default=None, description="the provider takes no new jobs after this day")
    retires: date | None = Field(default=None, description="the model and its fine-tunes stop serving")
    replacement: list[str] = Field(default_factory=list,
                                   description="the vendor's recommended replacement for a retiring model")
    evidence: dict[str, Evidence] = Field(default_factory=dict,
                                          description="per fact: where and when it was read")
    as_of: date
    sources: list[str] = Field(min_length=1)
    confidence: Literal["documented", "recalled"] = "documented"
    recalled: list[str] = Field(default_factory=list, description="facts that come from memory")
    origin: str = Field(default="catalog", description="where these facts were read: the catalog, or a "
                                                       "provider's live limits")

    @model_validator(mode="after")
    def _recalled_facts_exist(self) -> ModelFacts:
        unknown = sorted(set(self.recalled) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"recalled names unknown facts {unknown}")
        if self.recalled and self.confidence != "recalled":
            raise ValueError("recalled facts are listed, so confidence must be 'recalled'")
        unknown = sorted(set(self.evidence) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"evidence names unknown facts {unknown}")
        if self.serving is not None and self.serverless_lora != (self.serving == "per_token"):
            raise ValueError(f"serving {self.serving} disagrees with serverless_lora {self.serverless_lora}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _serving_implies_serverless(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("serving") and data.get("serverless_lora") is None:
            return {**data, "serverless_lora": data["serving"] == "per_token"}
        return data

    def unconfirmed(self, fact: str) -> str | None:
        """Why `fact` is not confirmed by the vendor's page (the claim's source), or None when it is."""
        seen = self.evidence.get(fact)
        return None if seen is None or seen.confirmed else (seen.note or f"unconfirmed ({seen.source})")

    def retirement(self, today: date) -> str | None:
        """A sentence for a base that is past its retirement date on `today`, naming the vendor's
        replacement; None while it serves."""
        if self.retires is None or today < self.retires:
            return None
        return f"{self.provider} {self.model_id} retired on {self.retires}" + self._replaced_by()

    def _replaced_by(self) -> str:
        if not self.replacement:
            return "; the vendor names no replacement"
        return f"; the vendor recommends {' or '.join(self.replacement)}"


def check_training_knobs(facts: ModelFacts, spec: TrainingSpec, vendor: str) -> None:
    """ConfigError naming the first knob of `spec` outside what `facts` allow, the range, and where it
    came from."""
    basis = f"{facts.origin}, as of {facts.as_of}"
    batch = facts.batch_size
    if facts.lora is not None and facts.lora.min_batch_size is not None:
        batch = Range(min=facts.lora.min_batch_size, max=facts.lora.max_batch_size)
    for knob, allowed in (("epochs", facts.epochs), ("batch_size", batch),
                          ("learning_rate", facts.learning_rate)):
        value = getattr(spec, knob)
        if value is not None and allowed is not None and not allowed.contains(value):
            raise ConfigError(f"training.{knob}: {vendor} allows {allowed.describe()} for {facts.model_id}, "
                              f"got {value:g} ({basis})")
    lora = facts.lora
    given = [k for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
             if getattr(spec, k) is not None]
    if lora is None and given:
        raise ConfigError(f"training.{given[0]}: {vendor} exposes no LoRA knobs for {facts.model_id}; remove "
                          + ", ".join(f"training.{k}" for k in given))
    if lora is not None and spec.lora_r is not None and spec.lora_r > lora.max_rank:
        raise ConfigError(f"training.lora_r: {vendor} allows 1 to {lora.max_rank} for {facts.model_id}, "
                          f"got {spec.lora_r} ({basis})")
    unknown = sorted(set(spec.lora_target_modules or [])
                     - {"all-linear", *(lora.target_modules if lora else [])})
    if unknown:
        raise ConfigError(f"training.lora_target_modules: {unknown} are not trainable on {facts.model_id}; "
                          f"allowed values: all-linear, {', '.join(lora.target_modules)} ({basis})")


@cache
def vendor_catalog(provider: str) -> dict[str, Any]:
    """A provider's catalog slice (`providers/<name>/catalog.yaml`), or {} for a provider without one."""
    entry = PROVIDERS.get(provider)
    if entry is None or entry.catalog is None:
        return {}
    text = resources.files(entry.catalog).joinpath("catalog.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def catalog_checked(provider: str) -> date | None:
    """The day a provider's catalog slice was last checked against the vendor's pages (`checked:`)."""
    checked = vendor_catalog(provider).get("checked")
    return checked if isinstance(checked, date) else None


def catalog_providers() -> list[str]:
    """The providers that have a catalog slice."""
    return sorted(name for name, entry in PROVIDERS.items() if entry.catalog is not None)


def model_facts(provider: str, model_id: str) -> ModelFacts | None:
    """The catalog entry for a provider's base model, or None when the catalog does not list it."""
    entry = vendor_catalog(provider).get("models", {}).get(model_id)
    if entry is None:
        return None
    return ModelFacts(provider=provider, model_id=model_id, **entry)


def models(provider: str) -> list[str]:
    return sorted(vendor_catalog(provider).get("models", {}))
