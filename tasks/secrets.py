"""API keys from Prefect Secret blocks.

A key in the environment is read by the provider itself (its `api_key_env` option). Naming a Secret block
instead (`provider.api_key_secret`, `eval.judge.api_key_secret`) keeps the key out of pipeline files, flow
parameters and the environment of the process that runs the flow: only the block's name travels.
"""

from __future__ import annotations

from providers.errors import ConfigError

SECRET_HELP = "a Prefect Secret block holding the API key; empty: the provider's environment variable"


def secret_value(block: str, where: str) -> str:
    """The value of Secret block `block`; ConfigError naming `where` (the key path) when it is missing."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(block).get()
    except ValueError:
        raise ConfigError(f"{where}: no Prefect Secret block named {block!r} on this Prefect API; "
                          "create it with `prefect block create secret` or "
                          f"Secret(value=...).save({block!r})") from None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: Prefect Secret block {block!r} does not hold a non-empty string")
    return value
