"""The exposure buffer loses nothing when its database fails and comes back, overflows, or is closed
mid-outage."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from gateway.buffer import ExposureBuffer
from tasks.registry import Registry
from tasks.release.traffic import TrafficStore


class FlakyStore:
    """A real registry whose database can be switched off: writes raise OperationalError while it is down."""

    def __init__(self, path: Path) -> None:
        self.store = TrafficStore(Registry.open(f"sqlite:///{path}").engine)
        self.down = False
        self.refused = 0

    def write(self, events: list[dict]) -> None:
        if self.down:
            self.refused += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database restarting"))
        self.store.write(events)


def _exposure(i: int) -> dict:
    return {"kind": "exposure", "request_id": f"r{i}", "experiment_id": 1, "unit_id": f"u{i % 7}",
            "arm": "treatment" if i % 3 == 0 else "control", "served_model": "m", "fallback": False,
            "ts": time.time()}


def test_an_outage_delays_writes_but_loses_none(tmp_path: Path):
    db = FlakyStore(tmp_path / "r.db")
    buffer = ExposureBuffer(db.write, tmp_path / "spill.jsonl", batch=50, interval_s=0.01, max_events=120,
                            max_backoff_s=0.05).start()
    for i in range(100):
        buffer.add(_exposure(i))
    assert buffer.flush(5)
    db.down = True
    started = time.perf_counter()
    for i in range(100, 400):  # more than max_events: the oldest spill to disk
        buffer.add(_exposure(i))
        buffer.add({"kind": "result", "request_id": f"r{i}", "http_status": 200, "latency_ms": 5.0})
    assert time.perf_counter() - started < 1.0  # adding never waited for the database
    time.sleep(0.2)
    on_disk = [tmp_path / "spill.jsonl", tmp_path / "spill.draining"]
    assert db.refused > 0 and any(path.exists() for path in on_disk)
    assert buffer.pending == 600
    assert db.store.count("exposure") == 100
    db.down = False
    assert buffer.flush(10)
    buffer.close()
    assert db.store.count("exposure") == 400
    assert all(e.latency_ms == 5.0 for e in db.store.exposures(1) if int(e.request_id[1:]) >= 100)
    assert not any(path.exists() for path in on_disk)


def test_closing_during_an_outage_hands_the_events_to_the_next_gateway(tmp_path: Path):
    db = FlakyStore(tmp_path / "r.db")
    db.down = True
    first = ExposureBuffer(db.write, tmp_path / "spill.jsonl", interval_s=0.01, max_backoff_s=0.02).start()
    for i in range(30):
        first.add(_exposure(i))
    first.close(timeout_s=0.2)
    assert db.store.count("exposure") == 0
    db.down = False
    second = ExposureBuffer(db.write, tmp_path / "spill.jsonl", interval_s=0.01).start()
    assert second.flush(5)
    second.close()
    assert db.store.count("exposure") == 30
    second_again = TrafficStore(db.store.engine)
    second_again.write([_exposure(0)])  # writing an event twice is harmless (a retried batch may have landed)
    assert second_again.count("exposure") == 30


def test_an_event_the_database_refuses_is_dead_lettered_and_the_rest_are_written(tmp_path: Path):
    """Before: one poisoned event failed every batch after it, for good. Now the batch is split until the bad
    event stands alone, it goes to the dead-letter file with its reason, and the stream goes on."""
    db = FlakyStore(tmp_path / "r.db")
    buffer = ExposureBuffer(db.write, tmp_path / "spill.jsonl", batch=64, interval_s=0.01).start()
    for i in range(100):
        buffer.add(_exposure(i))
        if i == 37:
            buffer.add({**_exposure(10_000), "experiment_id": {"not": "an id"}})  # the database refuses it
    assert buffer.flush(5)
    for i in range(100, 150):  # later events are not held back
        buffer.add(_exposure(i))
    assert buffer.flush(5)
    buffer.close()
    assert db.store.count("exposure") == 150
    (dead,) = [json.loads(line) for line in buffer.dead_letter_path.read_text().splitlines()]
    assert dead["event"]["request_id"] == "r10000" and dead["reason"]
    assert buffer.dead_lettered == 1


def test_a_spill_file_with_a_torn_line_is_replayed_once_and_the_line_dead_lettered(tmp_path: Path):
    db = FlakyStore(tmp_path / "r.db")
    spill = tmp_path / "spill.jsonl"
    lines = [json.dumps(_exposure(i)) for i in range(20)]
    spill.write_text("\n".join([*lines[:10], '{"kind": "exposure", "request_', *lines[10:]]) + "\n")
    db.store.write([_exposure(3)])  # already stored before the crash: replaying it stores nothing new
    buffer = ExposureBuffer(db.write, spill, interval_s=0.01).start()
    assert buffer.flush(5)
    buffer.close()
    assert db.store.count("exposure") == 20 and not spill.exists()
    assert buffer.dead_lettered == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_results_after_their_exposures_batch_fill_the_rows(tmp_path: Path, backend: str):
    """A result whose exposure went out in an earlier batch updates that row (one executemany per shape of
    result: full ones from the gateway, partial ones from replays and tests)."""
    store = TrafficStore(Registry.open(_registry_url(backend, tmp_path)).engine)
    store.write([_exposure(i) for i in range(6)])
    full = {"http_status": 200, "ttft_ms": None, "latency_ms": 12.5, "prompt_tokens": 5,
            "completion_tokens": 1, "cost_usd": 0.001, "schema_valid": None, "refusal": False,
            "served_model": "m2", "fallback": True}
    store.write([*({"kind": "result", "request_id": f"r{i}", **full} for i in range(3)),
                 {"kind": "result", "request_id": "r3", "http_status": 502},
                 {"kind": "result", "request_id": "r4", "http_status": 502},
                 {"kind": "result", "request_id": "unknown", **full}])
    rows = {e.request_id: e for e in store.exposures(1)}
    assert all(rows[f"r{i}"].latency_ms == 12.5 and rows[f"r{i}"].served_model == "m2"
               and rows[f"r{i}"].fallback for i in range(3))
    assert rows["r3"].http_status == rows["r4"].http_status == 502 and rows["r3"].latency_ms is None
    assert rows["r5"].http_status is None and len(rows) == 6


def _registry_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'r.db'}"
    url = os.environ.get("LORAFLOW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("needs the PostgreSQL server that .ci/run starts (LORAFLOW_TEST_POSTGRES_URL)")
    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS gateway_buffer CASCADE"))
        connection.execute(text("CREATE SCHEMA gateway_buffer"))
    return f"{url}?options=-csearch_path%3Dgateway_buffer"


def test_the_outage_warning_names_the_cause_without_the_rows(tmp_path: Path, caplog):
    """SQLAlchemy's message carries the statement and ten rows of parameters (user ids among them): the log
    gets the driver's first line only."""
    def down(events: list[dict]) -> None:
        raise OperationalError("INSERT INTO exposures ...", [{"unit_id": "alice@example.com"}],
                               ConnectionRefusedError("connection refused\nis the server running?"))

    buffer = ExposureBuffer(down, tmp_path / "spill.jsonl", interval_s=0.01, max_backoff_s=0.02).start()
    buffer.add(_exposure(1))
    deadline = time.monotonic() + 5
    while not buffer.failures and time.monotonic() < deadline:
        time.sleep(0.01)
    buffer.close(timeout_s=0.1)
    (warning,) = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert "connection refused" in warning and "alice" not in warning and "INSERT" not in warning


def test_pending_is_counted_in_memory_so_healthz_never_reads_the_spill(tmp_path: Path, monkeypatch):
    """`/healthz` asks `pending` on the event loop, and an outage can grow the spill file to megabytes; while
    the database is away the writer does not read the file either."""
    db = FlakyStore(tmp_path / "r.db")
    db.down = True
    spill = tmp_path / "spill.jsonl"
    spill.write_text("".join(json.dumps(_exposure(i)) + "\n" for i in range(20)))  # left by the last gateway
    buffer = ExposureBuffer(db.write, spill, interval_s=0.01, max_backoff_s=0.02).start()
    for i in range(20, 25):
        buffer.add(_exposure(i))
    deadline = time.monotonic() + 5
    while buffer.failures < 2 and time.monotonic() < deadline:  # retrying now: it tries the database first
        time.sleep(0.01)
    with monkeypatch.context() as patched:
        patched.setattr(Path, "read_text", lambda *a, **k: pytest.fail("pending read a file"))
        patched.setattr(Path, "open", lambda *a, **k: pytest.fail("pending read a file"))
        assert buffer.pending == 25
    db.down = False
    assert buffer.flush(5)
    buffer.close()
    assert db.store.count("exposure") == 25 and buffer.pending == 0
