"""The gateway's view of the registry: routes cached in memory and refreshed by a background thread.

Requests read only the cache, so a slow or restarting database never holds a request; a model name seen for
the first time is loaded once (in a worker thread). A refresh that fails keeps the last good route. A name the
registry does not have is remembered as unknown (a bounded set) and not reloaded at every refresh: reloading
each made the refresher's work grow with every distinct wrong name a client sent; the registry's list of names
tells when one appears.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from tasks.release.models import Route

log = logging.getLogger("loraflow.gateway")
WARN_EVERY_S = 30.0
MAX_UNKNOWN = 10_000  # past this, the oldest unknown names are forgotten (and looked up again if asked)


class RouteCache:
    def __init__(self, load: Callable[[str], Route | None], refresh_s: float = 1.0,
                 names: Callable[[], list[str]] | None = None) -> None:
        self._load, self._refresh_s, self._names = load, refresh_s, names
        self._routes: dict[str, Route | None] = {}
        self._unknown: dict[str, None] = {}  # asked for, not in the registry: oldest first
        self._unknown_lock = threading.Lock()
        self._stop = threading.Event()
        self._warned_at: float | None = None  # while refreshes fail: when the last warning went out
        self._thread = threading.Thread(target=self._run, name="loraflow-routes", daemon=True)

    def start(self) -> RouteCache:
        self.refresh()  # a database that is down now only leaves the cache empty; requests load lazily
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cached(self, name: str) -> bool:
        return name in self._routes or name in self._unknown

    def model_ids(self) -> list[str]:
        """Every name with a route, and its aliases (`NAME@champion`, `NAME@challenger` when one is set)."""
        ids = []
        for name, route in sorted(self._routes.items()):
            if route is not None:
                ids += [name, f"{name}@champion"] + ([f"{name}@challenger"] if route.challenger else [])
        return ids

    def get(self, name: str) -> Route | None:
        """The cached route; loads it now when `name` was never seen (raises if the database is down then)."""
        if name in self._routes or name in self._unknown:
            return self._routes.get(name)
        route = self._load(name)
        if route is not None or self._names is None:  # without a list of names, every name is refreshed
            self._routes[name] = route
        else:
            with self._unknown_lock:
                self._unknown[name] = None
                while len(self._unknown) > MAX_UNKNOWN:
                    del self._unknown[next(iter(self._unknown))]
        return route

    def refresh(self) -> None:
        """Reload every known route, and learn the registry's new names (for /v1/models)."""
        failed: list[str] = []
        if self._names is not None:
            try:
                for name in self._names():
                    self._routes.setdefault(name, None)
                    if name in self._unknown:
                        with self._unknown_lock:
                            self._unknown.pop(name, None)
            except SQLAlchemyError as exc:
                failed.append(f"listing the registered models ({type(exc).__name__})")
        for name in list(self._routes):
            try:
                self._routes[name] = self._load(name)
            except SQLAlchemyError as exc:  # keep serving the last good route through a database outage
                failed.append(f"{name} ({type(exc).__name__})")
        self._report(failed)

    def _report(self, failed: list[str]) -> None:
        """One warning when refreshes start failing and one every WARN_EVERY_S after, not one per route every
        second of an outage; one line when they work again."""
        now = time.monotonic()
        if not failed:
            if self._warned_at is not None:
                log.warning("routes: refreshed again from the registry")
            self._warned_at = None
        elif self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("routes: refresh failed for %s; serving the cached routes", ", ".join(failed[:5]))

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()
