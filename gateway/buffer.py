"""The exposure buffer: requests append events and move on; a background thread writes them in batches.

A failed write keeps the batch and retries with backoff, so a database restart loses nothing. When the buffer
passes `max_events`, the oldest events go to a local JSONL spill file (appended and fsynced); the flusher
reads the spill back first once the database answers. `close()` flushes what it can and spills the rest, so a
gateway stopped during an outage hands its events to the next one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("loraflow.gateway")

Writer = Callable[[list[dict[str, Any]]], None]


class ExposureBuffer:
    def __init__(self, write: Writer, spill_path: Path, *, batch: int = 500, interval_s: float = 0.2,
                 max_events: int = 50_000, max_backoff_s: float = 2.0) -> None:
        self._write, self.spill_path = write, spill_path
        self._batch, self._interval, self._max, self._max_backoff = (batch, interval_s, max_events,
                                                                     max_backoff_s)
        self._events: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._file_lock = threading.Lock()  # the spill file's; never held by a request
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loraflow-exposures", daemon=True)
        self.written = 0
        self.failures = 0

    def start(self) -> ExposureBuffer:
        self._thread.start()
        return self

    def add(self, event: dict[str, Any]) -> None:
        """Never blocks on the database or the disk and never raises for either."""
        with self._lock:
            self._events.append(event)
        if len(self._events) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._events) + self._spilled_count()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything added so far is written; False if the database did not take it in time."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not self.pending

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s + 5)
        with self._lock:
            rest = list(self._events)
            self._events.clear()
        if rest:
            self._spill(rest)
            log.warning("exposures: %d events left in %s for the next start", len(rest), self.spill_path)

    def _run(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self._drain_spill()
                # only what is here now: looping until empty would chase a busy stream with tiny batches
                # and split each exposure from its result (an insert, then an update) instead of writing
                # both as one row
                for _ in range(-(-len(self._events) // self._batch)):
                    self._write_some()
                backoff = self._interval
            except Exception as exc:  # noqa: BLE001 - whatever the writer raised, the events stay and retry
                self.failures += 1
                backoff = min(max(backoff * 2, 0.05), self._max_backoff)
                (log.warning if backoff < self._max_backoff else log.debug)(
                    "exposures: write failed (%s); %d pending, retry in %.2fs", type(exc).__name__,
                    self.pending, backoff)
                self._spill_excess()

    def _spill_excess(self) -> None:
        """Past `max_events`, the oldest events go to disk in one append (the flusher's thread, not a
        request's)."""
        with self._lock:
            overflow = len(self._events) - self._max
            spilled = [self._events.popleft() for _ in range(overflow)] if overflow > 0 else []
        if spilled:
            self._spill(spilled)

    def _write_some(self) -> None:
        with self._lock:
            batch = [self._events[i] for i in range(min(self._batch, len(self._events)))]
        self._write(batch)
        with self._lock:
            for _ in batch:
                self._events.popleft()
        self.written += len(batch)

    def _spill(self, events: list[dict[str, Any]]) -> None:
        with self._file_lock, self.spill_path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(event, default=str) + "\n" for event in events)
            out.flush()
            os.fsync(out.fileno())

    def _spilled_count(self) -> int:
        total = 0
        for path in (self.spill_path, self.spill_path.with_suffix(".draining")):
            try:
                with path.open(encoding="utf-8") as spilled:
                    total += sum(1 for _ in spilled)
            except FileNotFoundError:
                pass
        return total

    def _drain_spill(self) -> None:
        """Write spilled events back (oldest first, before anything in memory, so a result never precedes its
        exposure); a file goes only after every line of it is in the database. Rewriting is harmless."""
        claimed = self.spill_path.with_suffix(".draining")
        while True:
            if not claimed.exists():
                if not self.spill_path.exists():
                    return
                with self._file_lock:
                    os.replace(self.spill_path, claimed)
            lines = claimed.read_text(encoding="utf-8").splitlines()
            events = [json.loads(line) for line in lines if line.strip()]
            for begin in range(0, len(events), self._batch):
                self._write(events[begin:begin + self._batch])
            claimed.unlink()
            self.written += len(events)
