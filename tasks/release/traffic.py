"""What the gateway observed: assignments, exposures and outcomes, and the canary's snapshot built from them.

Writes are batches of events (`kind` plus fields) applied in one transaction and idempotent: an exposure is
keyed by its request id, an assignment by (experiment, unit), an outcome by its own id. So a batch that may or
may not have committed before a database failure can simply be written again.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    Insert,
    Integer,
    String,
    Update,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from tasks.registry import RegistryBase, create_tables
from tasks.release.ab import Moments
from tasks.release.canary import Snapshot, Window


class Assignment(RegistryBase):
    __tablename__ = "assignments"

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    arm: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[int] = mapped_column(Integer)
    first_assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Exposure(RegistryBase):
    __tablename__ = "exposures"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(Integer, index=True)
    unit_id: Mapped[str] = mapped_column(String(256))
    arm: Mapped[str] = mapped_column(String(16))
    served_model: Mapped[str] = mapped_column(String(512))
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    schema_valid: Mapped[bool | None] = mapped_column(Boolean)
    refusal: Mapped[bool | None] = mapped_column(Boolean)


class Outcome(RegistryBase):
    __tablename__ = "outcomes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    experiment_id: Mapped[int | None] = mapped_column(Integer)
    unit_id: Mapped[str | None] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_TABLES = {"assignment": Assignment, "exposure": Exposure, "outcome": Outcome}
_RESULT_FIELDS = ("latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cost_usd", "http_status",
                  "schema_valid", "refusal", "served_model", "fallback")


@functools.cache
def _insert(dialect: str, kind: str) -> Insert:
    """The idempotent insert of one event kind, built once per dialect."""
    table = _TABLES[kind].__table__
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).on_conflict_do_nothing()


@functools.cache
def _result_update(shape: tuple[str, ...]) -> Update:
    """Fill these measurement columns of the exposure `target` (parameters `new_<column>`)."""
    table = Exposure.__table__
    return (table.update().where(table.c.request_id == bindparam("target"))
            .values({name: bindparam(f"new_{name}") for name in shape}))


def _when(value: Any) -> datetime:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value


class TrafficStore:
    """Batch writes from the gateway's buffer, and the reads the canary needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, [Assignment.__table__, Exposure.__table__, Outcome.__table__])

    def write(self, events: list[dict[str, Any]]) -> None:
        """Apply events in order: `assignment`, `exposure` and `outcome` insert (ignoring duplicates);
        `result` fills an exposure's measurements. Results for exposures in the same batch are
        folded in first."""
        rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _TABLES}
        pending = {}
        for event in events:
            kind, fields = event["kind"], {k: v for k, v in event.items() if k != "kind"}
            for key in ("ts", "first_assigned_at"):
                if key in fields:
                    fields[key] = _when(fields[key])
            if kind == "result" and fields["request_id"] in pending:
                pending[fields["request_id"]].update(fields)
                continue
            if kind in _TABLES:  # executemany wants the same keys in every row
                fields = {column.name: None for column in _TABLES[kind].__table__.columns} | fields
            if kind == "exposure":
                pending[fields["request_id"]] = fields
            rows.setdefault(kind, []).append(fields)
        with self.engine.begin() as connection:
            for kind, rows_of_kind in rows.items():
                if kind in _TABLES and rows_of_kind:
                    connection.execute(_insert(connection.dialect.name, kind), rows_of_kind)
            # results whose exposure came in an earlier batch: one executemany per shape, not a statement per
            # row (built and compiled per row, that cost the gateway's writer about a millisecond of CPU each)
            shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for fields in rows.get("result", []):
                values = {k: v for k, v in fields.items() if k in _RESULT_FIELDS}
                if values:
                    shapes.setdefault(tuple(sorted(values)), []).append(
                        {**{f"new_{k}": v for k, v in values.items()}, "target": fields["request_id"]})
            for shape, params in shapes.items():
                connection.execute(_result_update(shape), params)

    def ping(self) -> None:
        """One round trip to the database, raising while it is away (a pooled connection proves nothing)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def exposures(self, experiment_id: int, since: datetime | None = None) -> list[Exposure]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(Exposure).where(Exposure.experiment_id == experiment_id)
            return list(session.scalars(query if since is None else query.where(Exposure.ts >= since)))

    def outcomes(self, experiment_id: int, kind: str) -> list[tuple[str, float]]:
        """(arm, value) of every outcome of `kind` joined to its exposure's arm."""
        with Session(self.engine) as session:
            rows = session.execute(select(Exposure.arm, Outcome.value).join(
                Exposure, Exposure.request_id == Outcome.request_id).where(
                Exposure.experiment_id == experiment_id, Outcome.type == kind))
            return [(arm, value) for arm, value in rows]

    def count(self, table: str) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(_TABLES[table]))


def snapshot(store: TrafficStore, experiment_id: int, primary: str, *, weight: float, started: datetime,
             step_started: datetime, now: datetime, window_s: float = 900.0) -> Snapshot:
    """The canary's view of an experiment: guardrail and primary moments over all finished exposures, distinct
    units per arm in the current step, and the breakers' last `window_s`."""
    done = [e for e in store.exposures(experiment_id) if e.http_status is not None]
    by_arm: dict[str, list[Exposure]] = {"treatment": [], "control": []}
    for exposure in done:
        by_arm.setdefault(exposure.arm, []).append(exposure)
    metrics: dict[str, dict[str, Moments]] = {name: {} for name in (
        "error", "log_latency", "over_control_p95", "cost", "schema_failure", "refusal", primary)}
    recent = {}
    control_p95 = _p95([e.latency_ms for e in by_arm.get("control", [])
                        if e.http_status < 400 and e.latency_ms])
    for arm, rows in by_arm.items():
        ok = [e for e in rows if e.http_status < 400]
        metrics["error"][arm] = Moments.of([float(e.http_status >= 500) for e in rows])
        metrics["log_latency"][arm] = Moments.of([math.log(max(e.latency_ms, 1e-3))
                                                  for e in ok if e.latency_ms])
        # p95 latency as a proportion: the share of requests slower than the control's p95 (5 % in control)
        metrics["over_control_p95"][arm] = Moments.of([float(e.latency_ms > control_p95) for e in ok
                                                       if e.latency_ms and control_p95 is not None])
        metrics["cost"][arm] = Moments.of([e.cost_usd for e in ok if e.cost_usd is not None])
        metrics["schema_failure"][arm] = Moments.of([float(not e.schema_valid) for e in ok
                                                     if e.schema_valid is not None])
        metrics["refusal"][arm] = Moments.of([float(bool(e.refusal)) for e in ok if e.refusal is not None])
        latest = [e for e in rows if (now - aware(e.ts)).total_seconds() <= window_s]
        recent[arm] = _window(latest)
    scores: dict[str, list[float]] = {"treatment": [], "control": []}
    for arm, value in store.outcomes(experiment_id, primary):
        scores.setdefault(arm, []).append(value)
    metrics[primary] = {arm: Moments.of(values) for arm, values in scores.items()}
    units = {arm: len({e.unit_id for e in rows if aware(e.ts) >= step_started})
             for arm, rows in by_arm.items()}
    return Snapshot(weight, (now - started).total_seconds(), (now - step_started).total_seconds(), units,
                    metrics, recent)


def aware(value: datetime) -> datetime:
    """`value` with UTC as its zone when it has none (SQLite hands timestamps back without one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite drops the zone


def _p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def _window(rows: list[Exposure]) -> Window:
    if not rows:
        return Window(0, 0.0, 0.0, 0.0)
    latencies = [e.latency_ms for e in rows if e.latency_ms is not None]
    schema = [not e.schema_valid for e in rows if e.schema_valid is not None]
    return Window(len(rows), sum(e.http_status >= 500 for e in rows) / len(rows),
                  _p95(latencies) or 0.0,
                  sum(schema) / len(schema) if schema else 0.0)
