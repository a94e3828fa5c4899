"""The emulator's core store: the lock, the clock, blob storage, counters, the default timeline, the fault
rules, the serving knobs, persistence and a cache of model imitations. What each vendor keeps (files,
jobs, objects) lives in that vendor's store (`emulator/<vendor>/store.py`), which `store()` holds.

One `EmulatorState` is shared by the HTTP routes (in uvicorn's thread) and the test that started the
server (in its own thread), so every method takes the lock, and so does every vendor store. With a
`state_dir`, file bytes live in `<state_dir>/files/<id>`; the timeline, the counters and the vendor
sections in `<state_dir>/state.json`, except a vendor store that keeps a file of its own beside it
(`vertex.json`, `bedrock.json`). Every snapshot is rewritten atomically after each mutation and read back
at start; fault rules, imitations and open upload sessions are not persisted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from emulator.faults import Faults
from emulator.serving import Serving, ServingSettings
from emulator.storage import Storage
from emulator.timeline import Timeline
from emulator.wire import ApiError
from providers.imitation import BaseImitation, TunedImitation

Imitation = BaseImitation | TunedImitation


class VendorStore(Protocol):
    """What a vendor keeps beside the core; `EmulatorState.store` holds one per vendor."""

    def to_dict(self) -> dict[str, Any]:
        """The store's saved section, plain JSON."""
        ...

    def load(self, section: dict[str, Any] | None) -> None:
        """Take back the section saved by an earlier run; None when there is none."""
        ...


StoreT = TypeVar("StoreT", bound=VendorStore)


class EmulatorState:
    """Everything the emulator knows. `counters` and `faults` are what tests read and script."""

    def __init__(self, state_dir: str | Path | None = None, *, timeline: Timeline | None = None,
                 file_processing_s: float = 0.0, latency_s: float = 0.0,
                 requests_per_minute: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.storage = Storage(state_dir)
        self.file_processing_s = file_processing_s
        self.faults = Faults()
        self.serving = Serving(ServingSettings(latency_s, requests_per_minute))
        self._clock = clock
        self.lock = threading.RLock()
        self._timeline = timeline or Timeline()
        self._counters: dict[str, Any] = _zero_counters()
        self._imitations: dict[tuple[str, str], Imitation] = {}
        self._stores: dict[str, tuple[VendorStore, str | None]] = {}  # name -> (store, its own file)
        self._sections: dict[str, Any] = {}  # saved sections of stores not made yet, saved back as read
        self._load(keep_timeline=timeline is not None)

    def now(self) -> float:
        return self._clock()

    # -- vendor stores ---------------------------------------------------------------------------

    def store(self, name: str, factory: Callable[[EmulatorState], StoreT], *,
              file: str | None = None) -> StoreT:
        """The vendor store called `name`, made by `factory(self)` on first use and handed the section
        an earlier run saved. Its section is saved under `name` in state.json or, with `file`, in
        `<state_dir>/<file>` on its own. Each vendor calls this from one accessor (`together_store(state)`),
        so `factory` and `file` are the same at every call."""
        with self.lock:
            held = self._stores.get(name)
            if held is None:
                store = factory(self)
                store.load(self.storage.load(file) if file else self._sections.pop(name, None))
                held = self._stores[name] = (store, file)
            return cast(StoreT, held[0])

    # -- timeline and counters -------------------------------------------------------------------

    @property
    def timeline(self) -> Timeline:
        """The timeline the next created job follows; jobs keep the one they were created with."""
        return self._timeline

    def set_timeline(self, timeline: Timeline) -> Timeline:
        """Replace the default timeline for new jobs; returns the previous one."""
        with self.lock:
            previous, self._timeline = self._timeline, timeline
            self.save()
        return previous

    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot: {"requests": {"POST /v1/files": n, ...}, "files_created": n, "jobs_created": n,
        "jobs_cancelled": n, "jobs_restarted": n, "completions": n, "rate_limited": n}, every API together
        (jobs_created counts create requests only; a restart counts in jobs_restarted)."""
        with self.lock:
            return json.loads(json.dumps(self._counters))

    def count_request(self, route: str) -> None:
        with self.lock:
            self._counters["requests"][route] = self._counters["requests"].get(route, 0) + 1
            self.save()

    def reset_counters(self) -> None:
        with self.lock:
            self._counters = _zero_counters()
            self.save()

    def count(self, name: str) -> None:
        """Add one to a counter; the caller holds the lock."""
        self._counters[name] += 1

    # -- serving ---------------------------------------------------------------------------------

    def set_serving(self, *, latency_s: float = 0.0,
                    requests_per_minute: int | None = None) -> ServingSettings:
        """Replace how chat completions are served (both settings at once); returns the previous settings."""
        return self.serving.configure(ServingSettings(latency_s, requests_per_minute))

    @property
    def latency_s(self) -> float:
        return self.serving.settings.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self.set_serving(latency_s=value, requests_per_minute=self.requests_per_minute)

    @property
    def requests_per_minute(self) -> int | None:
        return self.serving.settings.requests_per_minute

    @requests_per_minute.setter
    def requests_per_minute(self, value: int | None) -> None:
        self.set_serving(latency_s=self.latency_s, requests_per_minute=value)

    async def admit_completion(self) -> None:
        """Apply the serving limit and latency to one chat completion; ApiError 429 when over the limit."""
        try:
            await self.serving.serve()
        except ApiError:
            with self.lock:
                self.count("rate_limited")
                self.save()
            raise

    def count_completion(self) -> None:
        with self.lock:
            self.count("completions")
            self.save()

    def imitation(self, vendor: str, model: str, build: Callable[[], Imitation]) -> Imitation:
        """The stand-in that answers for a vendor's `model`, made by `build` on first use and kept; a
        build that raises keeps nothing, so a model that is not trained yet is looked up again."""
        with self.lock:
            key = (vendor, model)
            if key not in self._imitations:
                self._imitations[key] = build()
            return self._imitations[key]

    # -- persistence -----------------------------------------------------------------------------

    def save(self) -> None:
        """Write every snapshot: state.json and the file of each vendor store that keeps its own (a no-op
        without a state_dir); the caller holds the lock."""
        if self.storage.state_dir is None:
            return
        snapshot = {"timeline": self._timeline.to_dict(), "counters": self._counters, **self._sections}
        for name, (store, file) in self._stores.items():
            if file is None:
                snapshot[name] = store.to_dict()
            else:
                self.storage.save(store.to_dict(), file)
        self.storage.save(snapshot)

    def _load(self, *, keep_timeline: bool) -> None:
        snapshot = self.storage.load()
        if snapshot is None:
            return
        if not keep_timeline:
            self._timeline = Timeline.from_dict(snapshot["timeline"])
        self._counters = {**_zero_counters(), **snapshot["counters"]}
        self._sections = {k: v for k, v in snapshot.items() if k not in ("timeline", "counters")}
        if "files" in self._sections:  # a state.json from before vendor sections: OpenAI's at the top
            self._sections["openai"] = {"files": self._sections.pop("files"),
                                        "jobs": self._sections.pop("jobs", [])}


def _zero_counters() -> dict[str, Any]:
    return {"requests": {}, "files_created": 0, "jobs_created": 0, "jobs_cancelled": 0, "completions": 0,
            "rate_limited": 0, "jobs_restarted": 0}
