"""Provider adapters, loaded lazily by name.

`import providers` pulls in no vendor SDK: each entry is an import string plus the install hint shown
when the SDK is missing. Adding a provider is one module, one line here, one pyproject extra and one
contract-test subclass. CHAT_MODELS adds the chat-only adapters (judges, teachers) that cannot train.
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
class _Entry:
    target: str
    install_hint: str


PROVIDERS: Mapping[str, _Entry] = {
    "bedrock": _Entry("providers.bedrock:BedrockProvider", "pip install 'loraflow[bedrock]'"),
    "fake": _Entry("providers.fake:FakeProvider", ""),
    "local": _Entry("providers.local:LocalProvider", "pip install 'loraflow[local]'"),
    "openai": _Entry("providers.openai:OpenAIProvider", "pip install 'loraflow[openai]'"),
    "together": _Entry("providers.together:TogetherProvider", "pip install 'loraflow[together]'"),
    "vertex": _Entry("providers.vertex:VertexProvider", "pip install 'loraflow[vertex]'"),
}

CHAT_MODELS: Mapping[str, _Entry] = {
    **PROVIDERS,
    "anthropic": _Entry("providers.anthropic:AnthropicChat", "pip install 'loraflow[anthropic]'"),
}


def _load(kind: str, name: str, entries: Mapping[str, _Entry]) -> type:
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
