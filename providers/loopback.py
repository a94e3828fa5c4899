"""An ASGI app served by uvicorn on a loopback port from a daemon thread: the emulator's and the gateway's way
to run inside a test or a benchmark. `port=0` picks a free port; the context manager stops it."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

HOST = "127.0.0.1"


def bind(port: int, host: str = HOST) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
    # Nagle plus the client's delayed ACK add ~40 ms to every response (headers and body are two writes)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class ThreadedServer:
    """`config` goes to uvicorn.Config (log_config=None, access_log=False and ws="none" unless given)."""

    def __init__(self, app: Any, port: int = 0, host: str = HOST, *, name: str = "loraflow-server",
                 **config: Any) -> None:
        self._app, self._host, self._requested_port, self._name = app, host, port, name
        self._config = {"log_config": None, "access_log": False, "ws": "none", **config}
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a daemon thread; returns once the port accepts requests."""
        self._socket = bind(self._requested_port, self._host)
        self._server = uvicorn.Server(uvicorn.Config(self._app, **self._config))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"{self._name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start on {self._host}:{self._requested_port}")
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
