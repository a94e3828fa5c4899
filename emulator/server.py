"""Run the emulator with uvicorn on 127.0.0.1: in a daemon thread for tests, or in the foreground."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Self

import uvicorn

from emulator.app import API_ROOTS, build_app
from emulator.ownership import Claim, claim
from emulator.state import EmulatorState
from emulator.timeline import Timeline
from providers.loopback import HOST, ThreadedServer, bind

_DROPPED = "ASGI callable returned without completing response."


class _HideDeliberateDrops(logging.Filter):
    # a `drop` fault ends a response early on purpose; uvicorn reports that as an error
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


_CONFIG = {"log_level": "warning", "http": "h11", "lifespan": "off", "timeout_graceful_shutdown": 2}


class EmulatorServer(ThreadedServer):
    """The emulator on a loopback port, served from a daemon thread; use it as a context manager.

    `port=0` picks a free port. `base_url` is what an OpenAI client takes; `state` is the live store
    (counters, `set_timeline`, `faults`, `set_serving`). Requests need `Bearer <api_key>` when api_key is
    given. `latency_s` and `requests_per_minute` shape how chat completions are served (serving.py);
    `clock` (seconds since the epoch) drives job timelines, so a benchmark can run a two-hour job in a second.
    """

    def __init__(self, state_dir: str | Path | None = None, api_key: str | None = None,
                 timeline: Timeline | None = None, port: int = 0, *, file_processing_s: float = 0.0,
                 latency_s: float = 0.0, requests_per_minute: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = EmulatorState(state_dir, timeline=timeline, file_processing_s=file_processing_s,
                                   latency_s=latency_s, requests_per_minute=requests_per_minute, clock=clock)
        self.api_key = api_key
        super().__init__(build_app(self.state, api_key), port, name="loraflow-emulator", **_CONFIG)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes."""
        return f"{self.url}/v1"

    def base_url_for(self, provider: str) -> str:
        """What the named provider's client takes as base_url: one of API_ROOTS (`openai`, `together`,
        `vertex`, `bedrock`)."""
        if provider not in API_ROOTS:
            raise ValueError(f"the emulator does not speak {provider!r}; allowed values: "
                             f"{', '.join(API_ROOTS)}")
        return f"{self.url}{API_ROOTS[provider]}"

    def start(self, timeout: float = 10.0) -> Self:
        _quiet_uvicorn()
        return super().start(timeout)


def serve_forever(port: int = 8808, state_dir: str | Path | None = None, api_key: str | None = None,
                  speed: float = 1.0, *, latency_s: float = 0.0,
                  requests_per_minute: int | None = None) -> None:
    """Serve in the foreground until Ctrl-C; `speed` scales the default timeline of new jobs. With a
    `state_dir`, this is the one emulator that serves it (emulator/ownership.py) while it runs."""
    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
    with claim(Path(state_dir)) if state_dir is not None else nullcontext() as held:
        _serve(port, state_dir, api_key, speed, latency_s, requests_per_minute, held)


def _serve(port: int, state_dir: str | Path | None, api_key: str | None, speed: float, latency_s: float,
           requests_per_minute: int | None, held: Claim | None) -> None:
    # speed 1 keeps a timeline saved in state_dir; any other speed replaces it for new jobs
    state = EmulatorState(state_dir, timeline=Timeline(speed=speed) if speed != 1.0 else None,
                          latency_s=latency_s, requests_per_minute=requests_per_minute)
    server = uvicorn.Server(uvicorn.Config(build_app(state, api_key),
                                           log_config=uvicorn.config.LOGGING_CONFIG, access_log=False,
                                           ws="none", **_CONFIG))
    _quiet_uvicorn()
    sock = bind(port)
    where = f"state in {state_dir}" if state_dir else "in memory"
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    apis = ", ".join(f"{name} at {url}{root}" for name, root in API_ROOTS.items())
    print(f"loraflow emulator: {apis} ({where})", file=sys.stderr, flush=True)
    print(f"LORAFLOW_EMULATOR_URL={url}", flush=True)  # on stdout: the line a worker's environment needs
    if held is not None:
        held.publish(url)  # runs on this state directory share this emulator rather than start their own
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
