"""Run the emulator with uvicorn on 127.0.0.1: in a daemon thread for tests, or in the foreground."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn

from providers.emulator.app import build_app
from providers.emulator.bedrock_api import PREFIX as BEDROCK_PREFIX
from providers.emulator.state import EmulatorState
from providers.emulator.timeline import Timeline
from providers.emulator.together_api import PREFIX
from providers.emulator.vertex_api import PREFIX as VERTEX_PREFIX

HOST = "127.0.0.1"
# what each SDK's base_url is, below the server's URL
API_ROOTS = {"openai": "/v1", "together": PREFIX, "vertex": VERTEX_PREFIX, "bedrock": BEDROCK_PREFIX}
_DROPPED = "ASGI callable returned without completing response."


class _HideDeliberateDrops(logging.Filter):
    # a `drop` fault ends a response early on purpose; uvicorn reports that as an error
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


def _bind(port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
    # Nagle plus the client's delayed ACK add ~40 ms to every response (headers and body are two writes)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


def _config(state: EmulatorState, api_key: str | None, *, log_config: dict | None) -> uvicorn.Config:
    return uvicorn.Config(build_app(state, api_key), log_level="warning", log_config=log_config,
                          access_log=False, http="h11", ws="none", lifespan="off", timeout_graceful_shutdown=2)


class EmulatorServer:
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
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the emulator is not running")
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes."""
        return f"{self.url}/v1"

    def base_url_for(self, provider: str) -> str:
        """What the named provider's client takes as base_url: `openai` or `together`."""
        if provider not in API_ROOTS:
            raise ValueError(f"the emulator does not speak {provider!r}; allowed values: {', '.join(API_ROOTS)}")
        return f"{self.url}{API_ROOTS[provider]}"

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a daemon thread; returns once the port accepts requests."""
        self._socket = _bind(self._requested_port)
        self._server = uvicorn.Server(_config(self.state, self.api_key, log_config=None))
        _quiet_uvicorn()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"loraflow-emulator-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start on {HOST}:{self._requested_port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def serve_forever(port: int = 8808, state_dir: str | Path | None = None, api_key: str | None = None,
                  speed: float = 1.0, *, latency_s: float = 0.0, requests_per_minute: int | None = None) -> None:
    """Serve in the foreground until Ctrl-C; `speed` scales the default timeline of new jobs."""
    # speed 1 keeps a timeline saved in state_dir; any other speed replaces it for new jobs
    state = EmulatorState(state_dir, timeline=Timeline(speed=speed) if speed != 1.0 else None,
                          latency_s=latency_s, requests_per_minute=requests_per_minute)
    server = uvicorn.Server(_config(state, api_key, log_config=uvicorn.config.LOGGING_CONFIG))
    _quiet_uvicorn()
    sock = _bind(port)
    where = f"state in {state_dir}" if state_dir else "in memory"
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    apis = ", ".join(f"{name} at {url}{root}" for name, root in API_ROOTS.items())
    print(f"loraflow emulator: {apis} ({where})", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
