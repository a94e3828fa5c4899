"""Open the configured provider, starting the loopback emulator first when the pipeline asks for it.

The emulator keeps its state under $LORAFLOW_HOME/emulator, so a re-run after a crash finds the files
and jobs of the earlier run there, just as it would at the real provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from providers import get_provider
from providers.base import Provider
from emulator import EmulatorServer
from emulator.server import API_ROOTS
from providers.errors import ConfigError
from tasks.progress import milestone
from tasks.registry import loraflow_home
from tasks.secrets import secret_value

EMULATOR = "emulator"


@contextmanager
def open_provider(name: str, options: dict[str, Any], endpoint: str | None, api_key_secret: str | None = None
                  ) -> Iterator[Provider]:
    """The provider, its key from Secret block `api_key_secret` when named (else from its environment variable)."""
    if endpoint != EMULATOR:
        api_key = secret_value(api_key_secret, "provider.api_key_secret") if api_key_secret else None
        yield get_provider(name, options, base_url=endpoint, api_key=api_key)
        return
    if name not in API_ROOTS:
        raise ConfigError(f"provider.endpoint: the emulator does not speak {name!r}; it emulates: "
                          f"{', '.join(API_ROOTS)}")
    with EmulatorServer(state_dir=loraflow_home() / "emulator") as server:
        base_url = server.base_url_for(name)
        milestone("prepare", "started the loopback emulator at %s", base_url)
        yield get_provider(name, options, base_url=base_url, api_key="loraflow-emulator")
