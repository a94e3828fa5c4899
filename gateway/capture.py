"""Opt-in capture of what the gateway served: the chat messages and the answer, PII-scrubbed, as chat JSONL.

Off unless `loraflow gateway --capture-dir DIR` is given. Each finished non-streaming completion becomes one
line of DIR/capture-YYYYMMDD.jsonl in the training-data shape (`messages` ending with the assistant's answer)
plus `request_id`, `model` and `ts`, so the retrain (retrain.traffic) can join it with the feedback recorded
for that request and the monitor can read it as its drift window. Text is scrubbed with the data step's PII
rules before it reaches the disk; the retrain's data preparation scrubs again. Requests append to a queue; a
thread writes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from tasks.data.pii import PiiScanner

log = logging.getLogger("loraflow.gateway")


class Capture:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._scanner = PiiScanner()
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="loraflow-capture", daemon=True)
        self.written = 0

    def start(self) -> Capture:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def add(self, request_id: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        """Queue one served exchange; never blocks on the disk and never raises."""
        try:
            message = ((answer.get("choices") or [{}])[0].get("message") or {})
            content = message.get("content")
            if not isinstance(content, str) or not isinstance(body.get("messages"), list):
                return
            messages = [{"role": m.get("role"), "content": m.get("content")} for m in body["messages"]
                        if isinstance(m, dict) and isinstance(m.get("content"), str)]
            self._queue.put({"request_id": request_id, "model": body.get("model"), "ts": time.time(),
                             "messages": [*messages, {"role": "assistant", "content": content}]})
        except (AttributeError, IndexError, TypeError):  # a body we do not understand is not captured
            return

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)

    def _scrub(self, record: dict[str, Any]) -> dict[str, Any]:
        for message in record["messages"]:
            message["content"] = self._scanner.scrub(message["content"])[0]
        return record

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            path = self.directory / f"capture-{time.strftime('%Y%m%d', time.gmtime(record['ts']))}.jsonl"
            try:
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(self._scrub(record), ensure_ascii=False) + "\n")
                self.written += 1
            except OSError as exc:
                log.warning("capture: could not write %s (%s); the exchange is not captured", path, exc)
