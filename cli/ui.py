"""`loraflow ui`: the Prefect dashboard, the deployments and a worker, started and stopped as one; and
`prefect_api()`, the Prefect API every command that runs flows uses (one that is configured, or a temporary
server that dies with the command).

A local `prefect server` serves the API and its dashboard on a fixed loopback port, with its database under
$LORAFLOW_HOME/prefect (Prefect's profiles in ~/.prefect stay untouched). The deployments of
deployments/prefect.yaml are registered there, and one process worker takes their runs. While it runs,
$LORAFLOW_HOME/prefect/api-url names the API, so `loraflow run` in another shell reports to the same
dashboard instead of starting a server of its own on the same database.

Ctrl-C or SIGTERM stops the worker, then the server; a child whose parent is killed outright gets SIGTERM
from the kernel (PR_SET_PDEATHSIG), so no server is left behind holding the port.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from providers.errors import ConfigError
from tasks.registry import loraflow_home
from tasks.rundir import atomic_write

DEFAULT_PORT = 4200
_PR_SET_PDEATHSIG = 1


def prefect_dir() -> Path:
    return loraflow_home() / "prefect"


def api_url_file() -> Path:
    """Where a running `loraflow ui` names its API, for commands started in other shells."""
    return prefect_dir() / "api-url"


def running_api() -> str | None:
    """The API of a `loraflow ui` that is running now, or None (no file, or nobody answers there)."""
    try:
        url = api_url_file().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return url if url and healthy(url) else None


def healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=1):
            return True
    except (OSError, ValueError):
        return False


def server_env(port: int) -> dict[str, str]:
    """The environment of all `loraflow ui` starts: one API, no telemetry, state under LORAFLOW_HOME."""
    database = prefect_dir() / "prefect.db"
    return {**os.environ,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "loraflow"}


def check_port_free(port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: a TCP port is 1-65535")
    with socket.socket() as probe:
        # as the server will bind: connections of an earlier server in TIME_WAIT do not block it
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} on 127.0.0.1 is taken ({exc.strerror}): is `loraflow ui` already "
                              "running? Otherwise pick another with --port") from None


# resolved here, not in the child: between fork and exec the child only makes the one system call
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when `loraflow ui` dies, even by kill -9."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Children:
    """Child processes stopped in reverse start order: SIGTERM, a grace period, then SIGKILL."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent if _prctl else None)  # noqa: PLW1509
        self.processes.append((name, process))
        return process

    def exited(self) -> str | None:
        return next((name for name, process in self.processes if process.poll() is not None), None)

    def stop(self, grace_s: float = 20) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd, Docker, kill) unwinds like Ctrl-C, so every `finally` below runs."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_healthy(api: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(api):
        if process.poll() is not None:
            raise ConfigError(f"the Prefect server exited with {process.returncode}: {_last_line(log)}")
        if time.monotonic() > deadline:
            raise ConfigError(f"the Prefect server did not answer at {api} within {timeout_s:.0f} s; "
                              f"its log: {log}")
        time.sleep(0.5)


def _last_line(log: Path) -> str:
    """What a server that died said last, and where the rest is."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
    except OSError:
        lines = []
    if not lines:
        return f"it logged nothing to {log}; is {log.parent} full or read-only?"
    return f"{lines[-1].strip()[:300]} (its log: {log})"


def ui(port: int = DEFAULT_PORT, prefect_file: Path | None = None,
       on_ready: object = None) -> None:
    """Start server, deployments and worker; block until Ctrl-C, SIGTERM or a child's exit; stop them all.
    `on_ready(dashboard_url, deployment_names)` is told once everything answers."""
    from cli import deployments
    from cli.rehearsal import emulator_for

    specs = deployments.read_specs(prefect_file or deployments.PREFECT_FILE)
    check_port_free(port)
    log_dir = prefect_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(port)
    api = env["PREFECT_API_URL"]
    children = Children(log_dir)
    with sigterm_as_interrupt(), emulator_for(*deployments.endpoints(specs)):
        try:
            server = children.start("server", [sys.executable, "-m", "prefect", "server", "start", "--host",
                                               "127.0.0.1", "--port", str(port)], env)
            wait_healthy(api, server, log_dir / "server.log")
            names = _register(specs, api)
            pools = sorted({spec.work_pool for spec in specs})
            for pool in pools:
                children.start(f"worker-{pool}", [sys.executable, "-m", "prefect", "worker", "start",
                                                  "--pool", pool], {**env, **_emulator_env()})
            atomic_write(api_url_file(), api)
            if callable(on_ready):
                on_ready(f"http://127.0.0.1:{port}", names)
            while (gone := children.exited()) is None:
                time.sleep(0.5)
            raise ConfigError(f"the {gone} process exited; its log: {log_dir / gone}.log")
        except KeyboardInterrupt:
            pass
        finally:
            with suppress(OSError):
                api_url_file().unlink()
            children.stop()


def _register(specs: list, api: str) -> list[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli import deployments

    with temporary_settings(updates={PREFECT_API_URL: api}):
        return deployments.deploy(specs)


def _emulator_env() -> dict[str, str]:
    from tasks.connection import EMULATOR_URL

    return {EMULATOR_URL: os.environ[EMULATOR_URL]} if EMULATOR_URL in os.environ else {}


@contextmanager
def prefect_api() -> Iterator[None]:
    """A Prefect API for a command that runs flows: the configured one (PREFECT_API_URL, a profile's, or a
    running `loraflow ui`), else a temporary server started here for the command's lifetime. Prefect's own
    temporary server would outlive this process when it is killed outright; this one gets SIGTERM from the
    kernel then (PR_SET_PDEATHSIG), so a crash leaves no server behind."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_dir = prefect_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    api = f"http://127.0.0.1:{port}/api"
    children = Children(log_dir)
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log, started = log_dir / f"temporary-server-{os.getpid()}.log", False
    try:
        server = children.start(log.stem, [
            sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
            "--no-ui"], env)
        wait_healthy(api, server, log)
        started = True
        os.environ["PREFECT_API_URL"] = api
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield
    finally:
        _drain_to(api)
        os.environ.pop("PREFECT_API_URL", None)
        children.stop()
        if started:  # else kept: the error names it
            with suppress(OSError):
                log.unlink()


def _drain_to(api: str) -> None:
    """Send the logs and events still queued to the server before it stops: at exit they would be retried
    against a server that is gone, for a minute."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    if healthy(api):
        for service in (APILogWorker, EventsWorker):
            service.drain_all(timeout=10)
