"""Moving a pipeline to a new base model or provider: the frozen data and eval set of the pipeline's latest
model, trained on the new base, gated against the current champion (and against the new base untuned).

What stays frozen: the training rows and the held-out eval set of the champion's run (or of the newest
registered version that has a run, such as a challenger whose canary is pending); with no registered model,
the pipeline's data prepared and split as usual. What changes: the provider section (its options and
endpoint carry over only when the provider stays) and the base model; training knobs the new provider may not
take (LoRA rank, absolute learning rate, batch size) are dropped when the provider changes and the manifest
says which. The champion answers through its own provider, the candidate through the new one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import ChatModel, Completion, Decoding, Message, ModelRef, TrainingSpec
from providers.errors import ConfigError
from tasks.connection import ProviderConfig
from tasks.lifecycle.retrain import champion_data, champion_version
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tasks.runstore import RunPath

PORTABLE = ("base_model", "epochs", "seed", "suffix")  # what every provider takes


def migration_command(pipeline_name: str, base_model: str, provider: str | None = None) -> str:
    """The command that moves a pipeline, as the monitor prints it."""
    across = f" --provider {provider}" if provider else ""
    return f"loraflow migrate <the pipeline file of {pipeline_name}> --base {base_model}{across}"


def migrated_provider(current: ProviderConfig, provider: str | None,
                      options: dict[str, Any] | None = None) -> ProviderConfig:
    """The provider section after the move: the same one, or `provider` with `options` (the emulator stays
    the emulator; a real endpoint or secret belongs to the old provider and is not carried over)."""
    if provider is None or provider == current.name:
        return current
    endpoint = current.endpoint if current.endpoint == "emulator" else None
    return ProviderConfig(name=provider, endpoint=endpoint, options=options or {})


def migrated_spec(spec: TrainingSpec, base_model: str, *, provider_changed: bool
                  ) -> tuple[TrainingSpec, list[str]]:
    """The training spec on the new base, and the knobs dropped because the provider changed."""
    if not provider_changed:
        return spec.model_copy(update={"base_model": base_model}), []
    kept = {k: getattr(spec, k) for k in PORTABLE}
    dropped = [k for k, v in spec.model_dump(exclude=set(PORTABLE)).items() if v is not None]
    return TrainingSpec(**{**kept, "base_model": base_model}), dropped


def frozen_data(registry: Registry, name: str) -> tuple[RunPath, RunPath] | None:
    """The (train, eval) files the pipeline's models were trained and judged on: the champion's run, else the
    newest registered version's that is still there (on this disk or in the object store)."""
    found = champion_data(champion_version(registry, name))
    if found is not None:
        return found
    for version in sorted(ModelRegistry(registry).versions(name), key=lambda v: v.version, reverse=True):
        found = champion_data(version)
        if found is not None:
            return found
    return None


class ByProvider:
    """A ChatModel that answers each model through the provider that serves it: during a migration the
    champion is on the old provider and the candidate on the new one."""

    name: ClassVar[str] = "migration"

    def __init__(self, providers: dict[str, ChatModel]) -> None:
        self.providers = providers

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        provider = self.providers.get(model.provider)
        if provider is None:
            raise ConfigError(f"{model.model_id} is served by {model.provider!r}, which this migration does "
                              f"not open (it opens {', '.join(sorted(self.providers))})")
        return provider.infer(model, messages, params)
