"""Provider adapters, loaded lazily by name.

`import providers` pulls in no vendor SDK: each entry is an import string plus the install hint shown
when the SDK is missing. Adding a provider is one module, one line here, one pyproject extra and one
contract-test subclass.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import (
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
    "get_provider",
    "provider_class",
]


@dataclass(frozen=True)
class _Entry:
    target: str
    install_hint: str


PROVIDERS: Mapping[str, _Entry] = {
    "fake": _Entry("providers.fake:FakeProvider", ""),
    "openai": _Entry("providers.openai:OpenAIProvider", "pip install 'loraflow[openai]'"),
}


def provider_class(name: str) -> type:
    """The provider class registered under `name`; ConfigError for an unknown name or a missing extra."""
    entry = PROVIDERS.get(name)
    if entry is None:
        raise ConfigError(f"unknown provider {name!r}; allowed values: {', '.join(sorted(PROVIDERS))}")
    module_name, _, attribute = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise
        raise ConfigError(f"provider {name!r} needs {exc.name!r}, which is not installed: "
                          f"{entry.install_hint}") from exc
    return getattr(module, attribute)


def get_provider(name: str, options: Mapping[str, Any] | None = None, *, base_url: str | None = None,
                 api_key: str | None = None) -> Provider:
    """Build the named provider from its options (validated by the provider's own Options model).

    `base_url` points a hosted provider at another endpoint (the loopback emulator); `api_key` overrides
    the key the provider would read from its environment variable.
    """
    return provider_class(name).from_options(dict(options or {}), base_url=base_url, api_key=api_key)
