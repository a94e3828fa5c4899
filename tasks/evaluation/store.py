"""What evaluation keeps in the registry database (tables on RegistryBase, so one database holds all).

    eval_outputs        every answer, keyed by (model, request, decoding, sample): a resumed or repeated
                        evaluation pays only for what is missing. Judge answers are cached the same way.
    judge_calibrations  agreement of a judge grader with human labels (Cohen's kappa), per grader version,
                        judge model and prompt hash.
    eval_decisions      every gate decision with its rule-table version.

Only successful calls are stored; an infra error is retried next time.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, Float, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from providers.base import Completion, Decoding, Message
from tasks.registry import RegistryBase, create_tables

_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


class OutputRecord(RegistryBase):
    __tablename__ = "eval_outputs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(768))
    request_sha256: Mapped[str] = mapped_column(String(64))
    decoding: Mapped[str] = mapped_column(Text)
    sample: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(512))
    finish_reason: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class CalibrationRecord(RegistryBase):
    __tablename__ = "judge_calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    grader: Mapped[str] = mapped_column(String(128))
    grader_version: Mapped[str] = mapped_column(String(32))
    judge_model: Mapped[str] = mapped_column(String(512))
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    kappa: Mapped[float] = mapped_column(Float)
    agreement: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    labels_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DecisionRecord(RegistryBase):
    __tablename__ = "eval_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate: Mapped[str] = mapped_column(String(512))
    baseline: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(32))
    rules_version: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    run_dir: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


def output_key(model: str, messages: list[Message], decoding: Decoding, sample: int) -> str:
    """sha256 of (model, request, decoding, sample). `model` names where it runs too (provider@endpoint:id),
    so an answer from the emulator never stands in for the vendor's."""
    identity = {"model": model, "messages": messages, "decoding": decoding.model_dump(mode="json"),
                "sample": sample}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class EvalStore:
    """The evaluation tables over a registry engine; thread-safe (writes are serialised)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, [OutputRecord.__table__, CalibrationRecord.__table__, DecisionRecord.__table__])
        self._write = threading.Lock()

    def outputs(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The stored answers among `keys`."""
        wanted, found = list(keys), {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                for record in session.scalars(select(OutputRecord).where(OutputRecord.key.in_(chunk))):
                    found[record.key] = Completion(
                        text=record.text, model_id=record.model_id, finish_reason=record.finish_reason,
                        prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
                        latency_ms=record.latency_ms)
        return found

    def save_output(self, key: str, model: str, messages: list[Message], decoding: Decoding, sample: int,
                    completion: Completion) -> None:
        request = hashlib.sha256(
            json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        try:
            with self._write, Session(self.engine) as session, session.begin():
                if session.get(OutputRecord, key) is None:
                    session.add(OutputRecord(
                        key=key, model=model, request_sha256=request, decoding=decoding.model_dump_json(),
                        sample=sample, text=completion.text, model_id=completion.model_id,
                        finish_reason=completion.finish_reason, prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens, latency_ms=completion.latency_ms))
        except IntegrityError:
            pass  # a concurrent run stored this answer first; the cache keeps the first one

    def record_calibration(self, **values: Any) -> None:
        with self._write, Session(self.engine) as session, session.begin():
            session.add(CalibrationRecord(**values))

    def calibration(self, grader: str, version: str, judge_model: str,
                    prompt_sha256: str) -> dict[str, Any] | None:
        """The latest human-agreement record of this exact judge grader, or None."""
        with Session(self.engine) as session:
            record = session.scalars(select(CalibrationRecord).where(
                CalibrationRecord.grader == grader, CalibrationRecord.grader_version == version,
                CalibrationRecord.judge_model == judge_model,
                CalibrationRecord.prompt_sha256 == prompt_sha256,
            ).order_by(CalibrationRecord.id.desc()).limit(1)).one_or_none()
            if record is None:
                return None
            return {"kappa": record.kappa, "agreement": record.agreement, "n": record.n,
                    "date": record.created_at.date().isoformat()}

    def record_decision(self, **values: Any) -> None:
        with self._write, Session(self.engine) as session, session.begin():
            session.add(DecisionRecord(**values))
