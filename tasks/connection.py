"""Open the configured provider (or any chat model) at its endpoint, with its key.

`endpoint: emulator` names the loopback emulator, which plays the vendor in offline rehearsals. Product code
never starts it: whoever runs the pipeline does, and names it in LORAFLOW_EMULATOR_URL. `loraflow run`,
`eval`, `retrain`, `monitor`, `serve` and `data generate` start one for their lifetime (cli/rehearsal.py); a
Prefect worker or your own Python is given one with `loraflow emulator` and the variable. The emulator itself
says where each vendor's API lives on it (`GET /_emulator/health`), so nothing here knows its routes.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from providers import PROVIDERS, get_chat_model, get_provider
from providers.base import ChatModel, Provider
from providers.errors import ConfigError
from tasks.secrets import SECRET_HELP, secret_value

EMULATOR = "emulator"
EMULATOR_URL = "LORAFLOW_EMULATOR_URL"
EMULATOR_KEY = "loraflow-emulator"
_HOW_TO_START = ("`loraflow run`, `eval`, `retrain`, `monitor`, `serve` and `data generate` start one "
                 "themselves; elsewhere (a Prefect worker, your own Python) start `loraflow emulator "
                 f"--state-dir $LORAFLOW_HOME/emulator` and set {EMULATOR_URL} to the URL it prints")


class ProviderConfig(BaseModel):
    """The pipeline's `provider:` section."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"one of: {', '.join(PROVIDERS)}")
    endpoint: str | None = Field(
        default=None, description="'emulator' runs against the loopback emulator for an offline "
                                  "rehearsal; a URL points the provider at another endpoint; empty means "
                                  "the vendor's own")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="provider-only knobs, checked by the provider")
    api_key_secret: str | None = Field(default=None, description=SECRET_HELP)

    @property
    def target(self) -> str:
        """Names where jobs live (provider plus endpoint): records of an emulator run never match a real
        one."""
        return f"{self.name}@{self.endpoint}" if self.endpoint else self.name

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {name!r}; allowed values: {', '.join(sorted(PROVIDERS))}")
        return name


def open_provider(config: ProviderConfig) -> Provider:
    """The provider of `config`; its key from Secret block `api_key_secret` when named, else from its
    environment variable."""
    base_url, api_key = _endpoint_and_key(config.name, config.endpoint, config.api_key_secret,
                                          "provider.api_key_secret")
    return get_provider(config.name, config.options, base_url=base_url, api_key=api_key)


def open_chat_model(name: str, options: dict[str, Any], endpoint: str | None = None,
                    api_key_secret: str | None = None, *, where: str) -> ChatModel:
    """Any provider or chat-only adapter (a judge, a teacher), opened like `open_provider`; `where` names the
    secret's key path in errors."""
    base_url, api_key = _endpoint_and_key(name, endpoint, api_key_secret, where)
    return get_chat_model(name, options, base_url=base_url, api_key=api_key)


def _endpoint_and_key(name: str, endpoint: str | None, api_key_secret: str | None, where: str
                      ) -> tuple[str | None, str | None]:
    if endpoint == EMULATOR:
        return emulator_base_url(name), EMULATOR_KEY
    return endpoint, secret_value(api_key_secret, where) if api_key_secret else None


def emulator_base_url(provider: str) -> str:
    """Where `provider`'s API lives on the emulator that LORAFLOW_EMULATOR_URL names."""
    url = os.environ.get(EMULATOR_URL, "").rstrip("/")
    if not url:
        raise ConfigError("provider.endpoint: emulator: no loopback emulator runs for this process; "
                          f"{_HOW_TO_START}")
    try:
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=10) as response:
            apis = json.loads(response.read())["apis"]
    except (OSError, ValueError, KeyError) as exc:  # URLError is an OSError
        raise ConfigError(f"{EMULATOR_URL}={url}: no loopback emulator answers there ({exc}); "
                          f"{_HOW_TO_START}") from None
    if provider not in apis:
        raise ConfigError(f"provider.endpoint: the emulator does not speak {provider!r}; it emulates: "
                          f"{', '.join(apis)}")
    return f"{url}{apis[provider]}"
