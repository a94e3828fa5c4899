"""Who serves a state directory: one emulator at a time, found by the files beside its state.

    owner.lock     held exclusively by the emulator that serves the directory, for its lifetime. It is the
                   one writer of state.json, so concurrent runs never overwrite each other's files and
                   jobs; an endpoint file whose owner lock is free is stale (its emulator died).
    endpoint.json  {"url", "pid"} of that emulator, written by it once it answers, removed when it stops.

`claim` is what an emulator process does with its state directory (the foreground `loraflow emulator
--state-dir` and the shared one of emulator/shared.py alike); `owned` and `endpoint` are what a user reads.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from providers.errors import ConfigError

OWNER_LOCK, ENDPOINT = "owner.lock", "endpoint.json"


@dataclass(frozen=True)
class Endpoint:
    """Where the emulator that serves a state directory answers, and its process id."""

    url: str
    pid: int


def open_lock(path: Path) -> IO[bytes]:
    return path.open("a+b")


def try_lock(handle: IO[bytes], kind: int) -> bool:
    """Take an flock of `kind` (LOCK_SH or LOCK_EX) without waiting; whether it was taken."""
    try:
        fcntl.flock(handle, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (Linux /proc): a zombie does not, though its id is still taken."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    except IndexError:
        return True
    return state not in ("Z", "X")


def owned(state_dir: Path) -> bool:
    """Whether an emulator serves `state_dir` now."""
    with open_lock(state_dir / OWNER_LOCK) as probe:
        if try_lock(probe, fcntl.LOCK_EX):
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False
        return True


def endpoint(state_dir: Path, pid: int | None = None) -> Endpoint | None:
    """What endpoint.json says (only when `pid` wrote it, if given); None when it is absent or unreadable.
    Trust it only while `owned`."""
    try:
        found = json.loads((state_dir / ENDPOINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("url"), str):
        return None
    if not isinstance(found.get("pid"), int) or (pid is not None and found["pid"] != pid):
        return None
    return Endpoint(found["url"], found["pid"])


class Claim:
    """An emulator's hold on its state directory; `publish` tells users where it answers."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.published = False

    def publish(self, url: str) -> None:
        temporary = self.state_dir / f".{ENDPOINT}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
        os.replace(temporary, self.state_dir / ENDPOINT)
        self.published = True

    def withdraw(self) -> None:
        if self.published and endpoint(self.state_dir, os.getpid()) is not None:
            (self.state_dir / ENDPOINT).unlink(missing_ok=True)
        self.published = False


@contextmanager
def claim(state_dir: Path) -> Iterator[Claim]:
    """Hold `state_dir` for the block as its one emulator; ConfigError when another emulator holds it."""
    with open_lock(state_dir / OWNER_LOCK) as owner:
        if not try_lock(owner, fcntl.LOCK_EX):
            where = endpoint(state_dir)
            raise ConfigError(f"{state_dir}: another emulator serves this state directory"
                              + (f" at {where.url} (pid {where.pid})" if where else "")
                              + "; use it (LORAFLOW_EMULATOR_URL), or give this one another --state-dir")
        held = Claim(state_dir)
        try:
            yield held
        finally:
            held.withdraw()
