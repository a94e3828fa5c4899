"""Provider adapters, loaded lazily by name: the one list of provider names.

`import providers` pulls in no vendor SDK: each entry is an import string plus the install hint shown
when the SDK is missing, the module of the training-file format the provider reads, and the package
that holds its catalog slice (catalog.yaml). Adding a provider is one package `providers/<name>/`, one
line here, one pyproject extra and one contract-test subclass. CHAT_MODELS adds the chat-only adapters
(judges, teachers) that cannot train.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import (
    ChatModel,
    Completion,
    DatasetRef,
    Decoding,
    JobRef,
    JobState,
    JobStatus,
    Message,
    ModelRef,
    PreparedDataset,
    Provider,
    TrainingSpec,
)
from providers.errors import ConfigError

__all__ = [
    "CHAT_MODELS",
    "PROVIDERS",
    "Completion",
    "DatasetRef",
    "Decoding",
    "JobRef",
    "JobState",
    "JobStatus",
    "Message",
    "ModelRef",
    "PreparedDataset",
    "Provider",
    "TrainingSpec",
    "chat_model_class",
    "get_chat_model",
    "get_provider",
    "provider_class",
]


@dataclass(frozen=True)
class Entry:
    """Where a provider lives. `training_format` names a module with `format_for(model)`; `catalog` a package
    with a catalog.yaml of the provider's base models (None: the provider has no catalog slice)."""

    target: str
    install_hint: str
    training_format: str | None = None
    catalog: str | None = None


_CHAT_JSONL = "providers.openai.format"  # the OpenAI chat shape, read as is by the local trainer and the fake

PROVIDERS: Mapping[str, Entry] = {
    "azure_openai": Entry("providers.azure_openai.adapter:AzureOpenAIProvider",
                          "pip install 'loraflow[azure_openai]'", _CHAT_JSONL, "providers.azure_openai"),
    "bedrock": Entry("providers.bedrock.adapter:BedrockProvider", "pip install 'loraflow[bedrock]'",
                     "providers.bedrock.format", "providers.bedrock"),
    "fake": Entry("providers.fake:FakeProvider", "", _CHAT_JSONL),
    "local": Entry("providers.local:LocalProvider", "pip install 'loraflow[local]'", _CHAT_JSONL),
    "openai": Entry("providers.openai.adapter:OpenAIProvider", "pip install 'loraflow[openai]'", _CHAT_JSONL,
                    "providers.openai"),
    "together": Entry("providers.together.adapter:TogetherProvider", "pip install 'loraflow[together]'",
                      "providers.together.format", "providers.together"),
    "vertex": Entry("providers.vertex.adapter:VertexProvider", "pip install 'loraflow[vertex]'",
                    "providers.vertex.format", "providers.vertex"),
}

CHAT_MODELS: Mapping[str, Entry] = {
    **PROVIDERS,
    "anthropic": Entry("providers.anthropic.adapter:AnthropicChat", "pip install 'loraflow[anthropic]'"),
}


def _load(kind: str, name: str, entries: Mapping[str, Entry]) -> type:
    entry = entries.get(name)
    if entry is None:
        raise ConfigError(f"unknown {kind} {name!r}; allowed values: {', '.join(sorted(entries))}")
    module_name, _, attribute = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise
        raise ConfigError(f"{kind} {name!r} needs {exc.name!r}, which is not installed: "
                          f"{entry.install_hint}") from exc
    return getattr(module, attribute)


def provider_class(name: str) -> type:
    """The provider class registered under `name`; ConfigError for an unknown name or a missing extra."""
    return _load("provider", name, PROVIDERS)


def chat_model_class(name: str) -> type:
    """The chat model class under `name` (any provider, or a chat-only adapter); ConfigError as above."""
    return _load("chat model provider", name, CHAT_MODELS)


def get_provider(name: str, options: Mapping[str, Any] | None = None, *, base_url: str | None = None,
                 api_key: str | None = None) -> Provider:
    """Build the named provider from its options (validated by the provider's own Options model).

    `base_url` points a hosted provider at another endpoint (the loopback emulator); `api_key` overrides
    the key the provider would read from its environment variable.
    """
    return provider_class(name).from_options(dict(options or {}), base_url=base_url, api_key=api_key)


def get_chat_model(name: str, options: Mapping[str, Any] | None = None, *, base_url: str | None = None,
                   api_key: str | None = None) -> ChatModel:
    """Build the named chat model (a judge or teacher) like get_provider builds a provider."""
    return chat_model_class(name).from_options(dict(options or {}), base_url=base_url, api_key=api_key)
