"""The registry: what loraflow has uploaded and submitted, recorded before and after each remote call.

SQLAlchemy over SQLite by default (`$LORAFLOW_HOME/registry.db`, LORAFLOW_HOME defaults to ~/.loraflow);
any SQLAlchemy URL (PostgreSQL for teams) through `registry_url` or LORAFLOW_REGISTRY_URL. Records are
keyed by target (provider plus endpoint), so an emulator rehearsal never matches a real run. A record
with an intent but no remote id means a run died around the remote call: the caller asks the provider.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    DateTime,
    Engine,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from providers.base import DatasetRef, JobRef, JobState
from providers.errors import ConfigError
from tasks.claims import is_alive


def loraflow_home() -> Path:
    return Path(os.environ.get("LORAFLOW_HOME") or Path.home() / ".loraflow").expanduser()


def _now() -> datetime:
    return datetime.now(UTC)


_SCHEMA_LOCK = 0x6C6F7261  # the PostgreSQL advisory lock held while the schema is created or extended


def create_tables(engine: Engine, tables: list[Table] | None = None) -> None:
    """Create missing tables and add missing nullable columns; safe when several runs open a fresh
    PostgreSQL registry at once (concurrent CREATE TABLE statements otherwise collide in its catalog)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        RegistryBase.metadata.create_all(connection, tables=tables)
        # create_all never alters a table; registries written by an older loraflow lack newer nullable
        # columns. Adding them is the whole migration until the schema needs more (then: Alembic).
        inspector = inspect(connection)
        for table in tables or RegistryBase.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=connection.dialect)
                    connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


class RegistryBase(DeclarativeBase):
    """Every table of the registry database derives from this (one metadata, one create_all)."""


class UploadRecord(RegistryBase):
    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("target", "dataset_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(512))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    train_file_id: Mapped[str | None] = mapped_column(String(256))
    validation_file_id: Mapped[str | None] = mapped_column(String(256))
    owner: Mapped[str | None] = mapped_column(String(256))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobRecord(RegistryBase):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    submission_key: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int]
    target: Mapped[str] = mapped_column(String(512))
    base_model: Mapped[str] = mapped_column(String(256))
    job_id: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(String(512))
    owner: Mapped[str | None] = mapped_column(String(256))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


REGISTRY_BACKENDS = ("sqlite", "postgresql")  # the dialects the registry's claims are tested on


class Registry:
    """Short transactions over one engine; every method commits before it returns."""

    def __init__(self, url: str) -> None:
        self.url = url
        backend = url.partition(":")[0].partition("+")[0]
        if backend not in REGISTRY_BACKENDS:
            shown = url.partition("@")[2] or url  # never the credentials of a URL
            raise ConfigError(f"registry URL {shown!r}: scheme {backend!r} is not supported; allowed: "
                              f"{', '.join(REGISTRY_BACKENDS)} (sqlite:///path/registry.db or "
                              "postgresql+psycopg://user@host/db)")
        self.engine = create_engine(url)
        create_tables(self.engine)

    @classmethod
    def open(cls, url: str | None = None) -> Registry:
        url = url or os.environ.get("LORAFLOW_REGISTRY_URL")
        if not url:
            home = loraflow_home()
            home.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{home / 'registry.db'}"
        return cls(url)

    def finished_upload(self, target: str, dataset_sha256: str) -> DatasetRef | None:
        with Session(self.engine) as session:
            record = self._upload(session, target, dataset_sha256)
            if record is None or record.finished_at is None or record.train_file_id is None:
                return None
            return DatasetRef(provider=target.partition("@")[0], train_file_id=record.train_file_id,
                              validation_file_id=record.validation_file_id, sha256=dataset_sha256)

    def claim_upload(self, target: str, dataset_sha256: str, owner: str) -> bool:
        """True when the caller now owns this upload: a new claim, its own, or one whose owner is gone."""
        try:
            with Session(self.engine) as session, session.begin():
                record = self._upload(session, target, dataset_sha256)
                if record is None:
                    session.add(UploadRecord(target=target, dataset_sha256=dataset_sha256, owner=owner,
                                             claimed_at=_now()))
                    return True
                if record.finished_at is not None:
                    return False
                if record.owner == owner:
                    return True
                if is_alive(record.owner, record.claimed_at):
                    return False
                taken = session.execute(update(UploadRecord).where(
                    UploadRecord.id == record.id, UploadRecord.owner == record.owner).values(
                    owner=owner, claimed_at=_now(), started_at=_now()))
                return taken.rowcount == 1
        except IntegrityError:
            return False

    def upload_finished(self, target: str, ref: DatasetRef) -> None:
        with Session(self.engine) as session, session.begin():
            record = self._upload(session, target, ref.sha256)
            record.train_file_id = ref.train_file_id
            record.validation_file_id = ref.validation_file_id
            record.finished_at = _now()

    @staticmethod
    def _upload(session: Session, target: str, dataset_sha256: str) -> UploadRecord | None:
        return session.scalars(select(UploadRecord).where(
            UploadRecord.target == target, UploadRecord.dataset_sha256 == dataset_sha256)).one_or_none()

    def latest_job(self, submission_key: str) -> JobRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(JobRecord).where(JobRecord.submission_key == submission_key)
                                   .order_by(JobRecord.attempt.desc()).limit(1)).one_or_none()

    def claim_job(self, *, idempotency_key: str, submission_key: str, attempt: int, target: str,
                  base_model: str, owner: str) -> bool:
        """Record the intent to create attempt `attempt`; False when another run recorded it first."""
        try:
            with Session(self.engine) as session, session.begin():
                session.add(JobRecord(idempotency_key=idempotency_key, submission_key=submission_key,
                                      attempt=attempt, target=target, base_model=base_model, owner=owner,
                                      claimed_at=_now()))
            return True
        except IntegrityError:
            return False

    def take_over_job(self, record: JobRecord, owner: str) -> bool:
        """Own an intent that has no job id yet: True when it is ours or its owner is gone."""
        if record.owner == owner:
            return True
        if is_alive(record.owner, record.claimed_at):
            return False
        with Session(self.engine) as session, session.begin():
            taken = session.execute(update(JobRecord).where(
                JobRecord.id == record.id, JobRecord.owner == record.owner,
                JobRecord.job_id.is_(None)).values(
                owner=owner, claimed_at=_now()))
            return taken.rowcount == 1

    def job_created(self, job: JobRef) -> None:
        self._update_job(job.idempotency_key, job_id=job.job_id)

    def job_observed(self, job: JobRef, state: JobState, model_id: str | None = None) -> None:
        self._update_job(job.idempotency_key, state=state.value, model_id=model_id)

    def _update_job(self, idempotency_key: str, **values: str | None) -> None:
        with Session(self.engine) as session, session.begin():
            record = session.scalars(select(JobRecord).where(
                JobRecord.idempotency_key == idempotency_key)).one()
            for name, value in values.items():
                if value is not None:
                    setattr(record, name, value)
