"""A `loraflow run` killed outright (kill -9, the OOM killer) leaves no process behind: the Prefect server it
started for its lifetime gets SIGTERM from the kernel (PR_SET_PDEATHSIG). Prefect's own temporary server
outlived every crash before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli.deployments import REPO
from emulator.ownership import process_alive
from tests.browser.test_ui import _children
from tests.conftest import QUICKSTART


def test_kill_9_of_a_run_leaves_no_prefect_server_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"LORAFLOW_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")})
    run = subprocess.Popen([sys.executable, "-m", "cli.app", "run", str(QUICKSTART / "pipeline.yaml")],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, server = time.monotonic() + 120, None
    while server is None and time.monotonic() < deadline and run.poll() is None:
        for pid in _children(run.pid):
            if b"server\x00start" in Path(f"/proc/{pid}/cmdline").read_bytes():
                server = pid
        time.sleep(0.2)
    assert server is not None, "the run started no Prefect server of its own"
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 30
    while process_alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_alive(server), f"the Prefect server {server} outlived its run"


