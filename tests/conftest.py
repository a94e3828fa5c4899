"""Shared fixtures. No test touches the network: providers run in-process (fake) or on loopback (emulator).

PREFECT_HOME and LORAFLOW_HOME point at a fresh temporary directory for the whole session, set before
Prefect is imported, so no test reads or writes a developer's ~/.prefect or ~/.loraflow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="loraflow-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["LORAFLOW_HOME"] = str(_SESSION_HOME / "loraflow")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# unit tests call tasks outside flow runs; their log records have no run to attach to
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ.pop("OPENAI_API_KEY", None)

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """One Prefect test server for the whole session (about 13 s to start); yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


@pytest.fixture
def loraflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LORAFLOW_HOME (registry, emulator state) for one test."""
    home = tmp_path / "loraflow-home"
    monkeypatch.setenv("LORAFLOW_HOME", str(home))
    return home


@pytest.fixture
def emulator(loraflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A loopback emulator with its state under the test's LORAFLOW_HOME, named in LORAFLOW_EMULATOR_URL: what
    the CLI starts for a pipeline with `endpoint: emulator`, for tests that call flows and tasks directly."""
    from emulator import EmulatorServer

    with EmulatorServer(state_dir=loraflow_home / "emulator") as server:
        monkeypatch.setenv("LORAFLOW_EMULATOR_URL", server.url)
        yield server


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The server, with this process's environment pointed at it; fsspec's cached S3 clients are dropped so
    that none made for an earlier server is reused."""
    import fsspec

    from tests.s3 import s3_server

    with s3_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        fsspec.get_filesystem_class("s3").clear_instance_cache()
        yield env
        fsspec.get_filesystem_class("s3").clear_instance_cache()

