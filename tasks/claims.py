"""Who is making a remote call right now, so that concurrent runs of one pipeline never make it twice.

A run claims an upload or a job submission in the registry under an owner token (host, pid, random
part) before calling the provider. Another run that finds the claim waits while the owner lives and
takes the claim over when it does not: on the same host a dead pid is known at once; across hosts a
claim older than `STALE_AFTER_S` counts as abandoned.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from functools import cache

STALE_AFTER_S = 15 * 60.0
WAIT_POLL_S = 0.5


@cache
def _owner_for(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


def current_owner() -> str:
    """This process's owner token (a forked child gets its own)."""
    return _owner_for(os.getpid())


def is_alive(owner: str | None, claimed_at: datetime | None, *, now: datetime | None = None) -> bool:
    """Whether the owner of a claim may still be working on it."""
    if owner is None or claimed_at is None:
        return False
    if owner == current_owner():
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True
    if claimed_at.tzinfo is None:  # SQLite hands timestamps back without their zone
        claimed_at = claimed_at.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - claimed_at).total_seconds() < STALE_AFTER_S
