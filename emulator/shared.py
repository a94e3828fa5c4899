"""One emulator per state directory, shared by every process that rehearses against it.

The first user starts it as a process of its own (`python -m emulator.shared --state-dir DIR`), detached
from the user's terminal; later users find it through the files of emulator/ownership.py and these:

    users.lock     held shared by every user while it uses the emulator. The emulator exits once it can
                   take this lock exclusively, checked every half second after a short grace: a run that
                   finishes never stops it under another, and a kill -9 of every user leaves no orphan.
    start.lock     held exclusively by a user while it finds or starts the emulator: two users never start
                   two emulators.
    emulator.log   what the last emulator started printed, with its one-line reason when it could not start.

A user takes users.lock before start.lock and holds it while it starts one, so a new emulator is never left
without a user; a leaving emulator holds users.lock exclusively until it has stopped writing, so the next
user starts its successor only then.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from emulator.ownership import claim, endpoint, open_lock, owned, process_alive, try_lock
from emulator.server import EmulatorServer
from providers.errors import ConfigError

GRACE_S = 2.0
POLL_S = 0.5
START_TIMEOUT_S = 60.0
USERS_LOCK, START_LOCK, LOG = "users.lock", "start.lock", "emulator.log"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SharedEmulator:
    """The emulator a user is given: where it answers, its process id, and whether this user started it."""

    url: str
    pid: int
    started: bool


@contextmanager
def shared_emulator(state_dir: Path, *, start_timeout_s: float = START_TIMEOUT_S) -> Iterator[SharedEmulator]:
    """The emulator serving `state_dir`, started when none does; it is in use for the block, and outlives
    the block only while other users remain. ConfigError (one line) when it cannot be started."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        users = open_lock(state_dir / USERS_LOCK)
    except OSError as exc:
        raise ConfigError(f"{state_dir}: cannot keep the emulator's state here "
                          f"({exc.strerror or exc})") from None
    # a forked child (a data-scan worker) would hold the lock on after a kill -9 of this process
    os.register_at_fork(after_in_child=users.close)
    with users:
        fcntl.flock(users, fcntl.LOCK_SH)
        with open_lock(state_dir / START_LOCK) as start:
            fcntl.flock(start, fcntl.LOCK_EX)
            found = _running(state_dir, start_timeout_s) if _served(state_dir, start_timeout_s) else None
            emulator = found or _start(state_dir, start_timeout_s)
        yield emulator


def _served(state_dir: Path, timeout_s: float) -> bool:
    """Whether an emulator serves `state_dir`. One killed a moment ago holds its lock until its last thread
    has exited, after its main thread is already a zombie: wait for that instead of using its endpoint."""
    deadline = time.monotonic() + timeout_s
    while owned(state_dir):
        found = endpoint(state_dir)
        if found is None or process_alive(found.pid) or time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def _running(state_dir: Path, timeout_s: float) -> SharedEmulator:
    # an owner that names no endpoint yet is still starting (one started by hand): wait for it
    deadline = time.monotonic() + timeout_s
    while (found := endpoint(state_dir)) is None:
        if time.monotonic() > deadline:
            raise ConfigError(f"{state_dir}: an emulator holds this state directory but names no endpoint; "
                              "stop it, or point LORAFLOW_EMULATOR_URL at it")
        time.sleep(0.05)
    return SharedEmulator(found.url, found.pid, started=False)


def _start(state_dir: Path, timeout_s: float) -> SharedEmulator:
    # the same code as this process, wherever that was imported from
    path = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    with (state_dir / LOG).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "emulator.shared", "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": path})
    deadline = time.monotonic() + timeout_s
    while (found := endpoint(state_dir, process.pid)) is None:
        if process.poll() is not None:
            raise ConfigError(f"the emulator for {state_dir} did not start: {_last_line(state_dir / LOG)}")
        if time.monotonic() > deadline:
            process.kill()
            raise ConfigError(f"the emulator for {state_dir} did not answer within {timeout_s:.0f} s; "
                              f"see {state_dir / LOG}")
        time.sleep(0.05)
    process.returncode = 0  # it outlives this process by design: no "still running" warning at exit
    return SharedEmulator(found.url, found.pid, started=True)


def _last_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1].removeprefix("error: ") if lines else "it exited without a word"


def serve_while_used(state_dir: Path, *, grace_s: float = GRACE_S, poll_s: float = POLL_S) -> None:
    """Serve `state_dir` until no user holds users.lock (looked at after `grace_s`), then stop: the
    emulator process that `shared_emulator` starts. ConfigError when another emulator serves it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # users.lock is released last, once the state directory is free: the user waiting for it may start
    # the next emulator at once
    with (open_lock(state_dir / USERS_LOCK) as users, claim(state_dir) as held,
          EmulatorServer(state_dir=state_dir) as server):
        held.publish(server.url)
        time.sleep(grace_s)
        while not try_lock(users, fcntl.LOCK_EX):
            time.sleep(poll_s)
        held.withdraw()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.shared",
                                     description="Serve a state directory while its users remain.")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        serve_while_used(args.state_dir)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
