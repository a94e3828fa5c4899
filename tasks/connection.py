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
from tasks.forms import choices
from tasks.registry import loraflow_home
from tasks.secrets import SECRET_HELP, secret_value

EMULATOR = "emulator"
EMULATOR_URL = "LORAFLOW_EMULATOR_URL"
EMULATOR_KEY = "loraflow-emulator"


def _how_to_start() -> str:
    return ("`loraflow run`, `eval`, `retrain`, `monitor`, `serve` and `data generate` start one themselves; "
            "elsewhere (a Prefect worker, your own Python) start `loraflow emulator --state-dir "
            f"{loraflow_home() / 'emulator'}` and set the {EMULATOR_URL}=... line it prints")


class ProviderConfig(BaseModel):
    """The pipeline's `provider:` section."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"one of: {', '.join(PROVIDERS)}", json_schema_extra=choices(PROVIDERS))
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
                                          "provider.api_key_secret", "provider.endpoint")
    return get_provider(config.name, config.options, base_url=base_url, api_key=api_key)


def open_chat_model(name: str, options: dict[str, Any], endpoint: str | None = None,
                    api_key_secret: str | None = None, *, where: str, endpoint_where: str) -> ChatModel:
    """Any provider or chat-only adapter (a judge, a teacher), opened like `open_provider`; `where` and
    `endpoint_where` name the secret's and the endpoint's key paths (or CLI options) in errors."""
    base_url, api_key = _endpoint_and_key(name, endpoint, api_key_secret, where, endpoint_where)
    return get_chat_model(name, options, base_url=base_url, api_key=api_key)


def _endpoint_and_key(name: str, endpoint: str | None, api_key_secret: str | None, where: str,
                      endpoint_where: str) -> tuple[str | None, str | None]:
    if endpoint == EMULATOR:
        return emulator_base_url(name, where=endpoint_where), EMULATOR_KEY
    return endpoint, secret_value(api_key_secret, where) if api_key_secret else None


def emulator_apis(url: str, *, advice: str) -> dict[str, str]:
    """The API roots the emulator at `url` serves, by provider; a one-line ConfigError that ends with `advice`
    when no emulator answers there."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_emulator/health", timeout=10) as response:
            answer = json.loads(response.read())
        apis = answer.get("apis") if isinstance(answer, dict) else None
        if not isinstance(apis, dict):
            raise TypeError("its health answer lists no apis")
    except (OSError, ValueError, TypeError) as exc:  # URLError is an OSError
        raise ConfigError(f"{EMULATOR_URL}={url} names no running emulator ({exc}); {advice}") from None
    return apis


def emulator_base_url(provider: str, *, where: str = "provider.endpoint") -> str:
    """Where `provider`'s API lives on the emulator that LORAFLOW_EMULATOR_URL names; `where` is the
    config key that asked for it, for errors."""
    url = os.environ.get(EMULATOR_URL, "").rstrip("/")
    if not url:
        raise ConfigError(f"{where}: emulator: no loopback emulator runs for this process; {_how_to_start()}")
    apis = emulator_apis(url, advice=_how_to_start())
    if provider not in apis:
        raise ConfigError(f"{where}: the emulator does not speak {provider!r}; it emulates: "
                          f"{', '.join(apis)}")
    return f"{url}{apis[provider]}"
