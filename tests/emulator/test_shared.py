"""One emulator per state directory: the first user starts it, later users share it, a stale endpoint is
replaced, and it stops by itself once its last user is gone, a kill -9 included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from emulator.ownership import ENDPOINT, claim, owned, process_alive
from emulator.shared import GRACE_S, POLL_S, serve_while_used, shared_emulator
from providers.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False




def _ends(pid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not process_alive(pid)


def test_later_users_share_the_first_ones_emulator_which_outlives_it_until_the_last_leaves(
        tmp_path: Path) -> None:
    with ExitStack() as first:
        started = first.enter_context(shared_emulator(tmp_path))
        with ExitStack() as second:
            shared = second.enter_context(shared_emulator(tmp_path))
            assert started.started and not shared.started
            assert (shared.url, shared.pid) == (started.url, started.pid)
            first.close()  # the user that started it leaves first
            time.sleep(GRACE_S + 3 * POLL_S)
            assert _answers(shared.url), "the emulator stopped under a user that still runs"
    assert _ends(started.pid), "the emulator outlived its last user"
    assert not (tmp_path / ENDPOINT).exists() and not owned(tmp_path)


def test_a_stale_endpoint_is_replaced(tmp_path: Path) -> None:
    (tmp_path / ENDPOINT).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2 ** 22 + 1}))
    with shared_emulator(tmp_path) as emulator:
        assert emulator.started and _answers(emulator.url)
        assert json.loads((tmp_path / ENDPOINT).read_text()) == {"url": emulator.url, "pid": emulator.pid}
    assert _ends(emulator.pid)


def test_an_emulator_killed_outright_is_replaced_by_the_next_user(tmp_path: Path) -> None:
    with shared_emulator(tmp_path) as killed:
        os.kill(killed.pid, signal.SIGKILL)
        assert _ends(killed.pid, within_s=5)
    with shared_emulator(tmp_path) as successor:
        assert successor.started and successor.pid != killed.pid and _answers(successor.url)
        with urllib.request.urlopen(f"{successor.url}/_emulator/counters") as response:
            assert "jobs_created" in json.loads(response.read())
    assert _ends(successor.pid)


_USER = """import sys, time
from pathlib import Path
from emulator.shared import shared_emulator
with shared_emulator(Path(sys.argv[1])) as emulator:
    print(emulator.pid, flush=True)
    time.sleep(120)
"""


def test_a_kill_9_of_its_only_user_leaves_no_emulator_behind(tmp_path: Path) -> None:
    user = subprocess.Popen([sys.executable, "-c", _USER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    pid = int(user.stdout.readline())
    assert process_alive(pid)
    user.send_signal(signal.SIGKILL)
    user.wait(timeout=10)
    assert _ends(pid, within_s=GRACE_S + 10), f"emulator {pid} outlived the kill -9 of its only user"


def test_a_second_emulator_on_a_served_state_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    with shared_emulator(tmp_path) as emulator:
        with pytest.raises(ConfigError, match=rf"^{tmp_path}: another emulator serves this state directory "
                                              rf"at {emulator.url} \(pid {emulator.pid}\); use it"):
            serve_while_used(tmp_path)
        with pytest.raises(ConfigError, match="another emulator serves"), claim(tmp_path):
            pytest.fail("a second claim must not be granted")


def test_an_emulator_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{truncated")
    with pytest.raises(ConfigError, match=rf"^the emulator for {tmp_path} did not start: "
                                          rf"{tmp_path}/state.json: the emulator's saved state is damaged"), \
            shared_emulator(tmp_path):
        pytest.fail("the block must not run")
    assert not owned(tmp_path)
