"""`loraflow gateway`: serve the OpenAI-compatible gateway in the foreground."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, fail
from providers.errors import ConfigError

MIN_KEY_LENGTH = 16


def gateway(port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8800,
            host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
            api_key: Annotated[list[str] | None, typer.Option(
                help="a client key to accept (repeatable); default: LORAFLOW_GATEWAY_KEYS, comma-separated")]
            = None,
            upstream: Annotated[str | None, typer.Option(
                help="OpenAI-compatible base URL for versions registered without one")] = None,
            registry: Annotated[str | None, typer.Option(help="registry SQLAlchemy URL")] = None,
            capture_dir: Annotated[Path | None, typer.Option(
                help="opt-in: write served exchanges (PII-scrubbed chat JSONL) here for the retrain and the "
                     "monitor")] = None,
            max_body_mb: Annotated[float, typer.Option(help="refuse request bodies above this size (413)",
                                                       min=0.001)] = 8.0,
            drain_s: Annotated[float, typer.Option(
                help="on SIGTERM or Ctrl-C, how long to write buffered events before spilling the rest",
                min=0)] = 10.0) -> None:
    """Route /v1/chat/completions by the registry's champion/challenger with sticky A/B; log exposures.
    SIGTERM or Ctrl-C stops accepting, drains the events to the database within --drain-s, spills the rest
    for the next start, and exits 0."""
    from gateway.server import build_gateway, serve
    from tasks.registry import Registry

    try:
        keys = client_keys(api_key)
        built = build_gateway(Registry.open(registry), keys, default_base_url=upstream,
                              upstream_api_key=os.environ.get("LORAFLOW_UPSTREAM_API_KEY"),
                              capture_dir=capture_dir)
    except ConfigError as exc:
        raise fail(exc) from None
    built.max_body_bytes = int(max_body_mb * 1024 * 1024)
    stopped: list[int] = []
    # uvicorn shuts down on these signals, then raises them again once it is done; a handler of ours makes
    # that second delivery a no-op, so the drain below runs (the default SIGTERM would kill the process)
    previous = {sig: signal.signal(sig, lambda signum, frame: stopped.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve(built, host, port)
    finally:
        built.exposures.close(timeout_s=drain_s)
        built.routes.close()
        if built.capture is not None:
            built.capture.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped:
        console.print(f"gateway stopped: {built.exposures.written} events written, "
                      f"{built.exposures.dead_lettered} dead-lettered, the rest spilled to "
                      f"{built.exposures.spill_path}")


def client_keys(given: list[str] | None) -> list[str]:
    """The keys clients must present: none empty (`Bearer` with no token must never pass), none short."""
    raw = given if given is not None else os.environ.get("LORAFLOW_GATEWAY_KEYS", "").split(",")
    keys = [key.strip() for key in raw]
    if not keys or any(not key for key in keys):
        raise ConfigError("the gateway needs non-empty API keys (--api-key or LORAFLOW_GATEWAY_KEYS, "
                          "comma-separated): an empty key would let any `Authorization: Bearer` through")
    short = [key for key in keys if len(key) < MIN_KEY_LENGTH]
    if short:
        raise ConfigError(f"{len(short)} gateway key(s) shorter than {MIN_KEY_LENGTH} characters: use long "
                          "random keys, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return keys
