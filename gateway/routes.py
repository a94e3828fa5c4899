"""The gateway's view of the registry: routes cached in memory and refreshed by a background thread.

Requests read only the cache, so a slow or restarting database never holds a request; a model name seen for
the first time is loaded once (in a worker thread). A refresh that fails keeps the last good route.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from tasks.release.models import Route

log = logging.getLogger("loraflow.gateway")


class RouteCache:
    def __init__(self, load: Callable[[str], Route | None], refresh_s: float = 1.0,
                 names: Callable[[], list[str]] | None = None) -> None:
        self._load, self._refresh_s, self._names = load, refresh_s, names
        self._routes: dict[str, Route | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loraflow-routes", daemon=True)

    def start(self) -> RouteCache:
        self.refresh()  # a database that is down now only leaves the cache empty; requests load lazily
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cached(self, name: str) -> bool:
        return name in self._routes

    def model_ids(self) -> list[str]:
        """Every name with a route, and its aliases (`NAME@champion`, `NAME@challenger` when one is set)."""
        ids = []
        for name, route in sorted(self._routes.items()):
            if route is not None:
                ids += [name, f"{name}@champion"] + ([f"{name}@challenger"] if route.challenger else [])
        return ids

    def get(self, name: str) -> Route | None:
        """The cached route; loads it now when `name` was never seen (raises if the database is down then)."""
        if name in self._routes:
            return self._routes[name]
        route = self._load(name)
        self._routes[name] = route
        return route

    def refresh(self) -> None:
        """Reload every known route, and learn the registry's new names (for /v1/models)."""
        if self._names is not None:
            try:
                for name in self._names():
                    self._routes.setdefault(name, None)
            except SQLAlchemyError as exc:
                log.warning("routes: listing the registered models failed (%s)", type(exc).__name__)
        for name in list(self._routes):
            try:
                self._routes[name] = self._load(name)
            except SQLAlchemyError as exc:  # keep serving the last good route through a database outage
                log.warning("routes: refresh of %s failed (%s); keeping the cached route", name,
                            type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()
