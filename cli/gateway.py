"""`loraflow gateway`: serve the OpenAI-compatible gateway in the foreground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.console import fail
from providers.errors import ConfigError


def gateway(port: Annotated[int, typer.Option(help="port")] = 8800,
            host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
            api_key: Annotated[list[str] | None, typer.Option(
                help="a client key to accept (repeatable); default: LORAFLOW_GATEWAY_KEYS, comma-separated")]
            = None,
            upstream: Annotated[str | None, typer.Option(
                help="OpenAI-compatible base URL for versions registered without one")] = None,
            registry: Annotated[str | None, typer.Option(help="registry SQLAlchemy URL")] = None,
            capture_dir: Annotated[Path | None, typer.Option(
                help="opt-in: write served exchanges (PII-scrubbed chat JSONL) here for the retrain and the "
                     "monitor")] = None) -> None:
    """Route /v1/chat/completions by the registry's champion/challenger with sticky A/B; log exposures."""
    import uvicorn

    from gateway.app import create_app
    from gateway.server import build_gateway
    from tasks.registry import Registry

    keys = api_key or [k for k in os.environ.get("LORAFLOW_GATEWAY_KEYS", "").split(",") if k]
    try:
        built = build_gateway(Registry.open(registry), keys, default_base_url=upstream,
                              upstream_api_key=os.environ.get("LORAFLOW_UPSTREAM_API_KEY"),
                              capture_dir=capture_dir)
    except ConfigError as exc:
        raise fail(exc) from None
    try:
        uvicorn.run(create_app(built), host=host, port=port, access_log=False, ws="none")
    finally:
        built.exposures.close()
        built.routes.close()
        if built.capture is not None:
            built.capture.close()
