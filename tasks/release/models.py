"""Model versions, the `champion`/`challenger` aliases with traffic weights, experiments, and the audit trail.

Tables live in the registry database (tasks/registry.py). A version carries its lineage (dataset hash, job,
evaluation run, offline decision) and where it is served (an OpenAI-compatible base URL and the name to send).
Every alias change writes an `alias_changes` row with who, when and why; promotion and rollback
are alias moves.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from providers.errors import ConfigError, LoraflowError
from tasks.registry import Registry, RegistryBase, create_tables

ALIASES = ("champion", "challenger")
_RACE_ATTEMPTS = 5


def _now() -> datetime:
    return datetime.now(UTC)


class ModelVersion(RegistryBase):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    version: Mapped[int] = mapped_column(Integer)
    served_name: Mapped[str] = mapped_column(String(512))
    base_url: Mapped[str | None] = mapped_column(String(1024))
    provider: Mapped[str | None] = mapped_column(String(64))
    base_model: Mapped[str | None] = mapped_column(String(256))
    dataset_sha256: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(256))
    eval_run: Mapped[str | None] = mapped_column(String(1024))
    decision: Mapped[str | None] = mapped_column(String(64))
    price_in_per_mtok: Mapped[float | None] = mapped_column(Float)
    price_out_per_mtok: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ModelAlias(RegistryBase):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("name", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    alias: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)


class AliasChange(RegistryBase):
    __tablename__ = "alias_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    changed_by: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(2048))
    experiment_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Experiment(RegistryBase):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(256), unique=True)
    salt: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    control_version: Mapped[int] = mapped_column(Integer)
    treatment_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="running")
    policy: Mapped[dict] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_rationale: Mapped[str | None] = mapped_column(String(4096))


@dataclass(frozen=True)
class Arm:
    """What the gateway needs to route one arm."""

    version: int
    served_name: str
    base_url: str | None
    price_in_per_mtok: float | None
    price_out_per_mtok: float | None


@dataclass(frozen=True)
class Route:
    """A model name's live routing: the champion, and the challenger's arm, share and experiment if any."""

    name: str
    champion: Arm
    challenger: Arm | None = None
    weight: float = 0.0
    experiment_id: int | None = None
    experiment_key: str | None = None
    salt: str | None = None


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class ModelRegistry:
    """Versions, aliases and experiments over the registry engine; each method is one transaction."""

    def __init__(self, registry: Registry) -> None:
        self.engine = registry.engine
        create_tables(self.engine, [ModelVersion.__table__, Experiment.__table__, ModelAlias.__table__,
                                    AliasChange.__table__])

    def register(self, name: str, served_name: str, *, by: str | None = None, **lineage: str | float | None
                 ) -> ModelVersion:
        """The version of `name` that serves `served_name`: the existing one, else a new one (1, 2, ...).
        `lineage`: base_url, provider, base_model, dataset_sha256, job_id, eval_run, decision,
        price_in_per_mtok, price_out_per_mtok. Concurrent runs registering the same model get one version (the
        loser of the unique (name, version) race reads the winner's row)."""
        for _ in range(_RACE_ATTEMPTS):
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    existing = session.scalars(select(ModelVersion).where(
                        ModelVersion.name == name, ModelVersion.served_name == served_name)
                        .order_by(ModelVersion.version).limit(1)).one_or_none()
                    if existing is not None:
                        return existing
                    latest = session.scalar(select(func.max(ModelVersion.version)).where(
                        ModelVersion.name == name))
                    record = ModelVersion(name=name, version=(latest or 0) + 1, served_name=served_name,
                                          created_by=by or who(), **lineage)
                    session.add(record)
                return record
            except IntegrityError:
                continue
        raise LoraflowError(f"could not register a version of {name}: {_RACE_ATTEMPTS} concurrent writers "
                            "won first")

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
            return list(session.scalars(query if name is None else query.where(ModelVersion.name == name)))

    def names(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name)))

    def aliases(self, name: str) -> dict[str, tuple[int, float]]:
        """alias -> (version, weight)."""
        with Session(self.engine) as session:
            rows = session.execute(select(ModelAlias.alias, ModelVersion.version, ModelAlias.weight)
                                   .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                                   .where(ModelAlias.name == name))
            return {alias: (version, weight) for alias, version, weight in rows}

    def history(self, name: str) -> list[AliasChange]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(AliasChange).where(AliasChange.name == name)
                                        .order_by(AliasChange.id)))

    def set_alias(self, name: str, alias: str, version: int | None, *, weight: float, reason: str,
                  by: str | None = None, experiment_id: int | None = None) -> None:
        """Point `alias` at `version` (None: keep its version) with `weight`; records the change."""
        if alias not in ALIASES:
            raise ConfigError(f"alias {alias!r}: allowed values: {', '.join(ALIASES)}")
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"weight {weight}: must be between 0 and 1")
        for _ in range(_RACE_ATTEMPTS):  # two first settings of one alias race on unique (name, alias)
            try:
                with Session(self.engine) as session, session.begin():
                    self._set(session, name, alias, version, weight, reason, by or who(), experiment_id)
                return
            except IntegrityError:
                continue
        raise LoraflowError(f"could not set {name}@{alias}: {_RACE_ATTEMPTS} concurrent writers won first")

    def _set(self, session: Session, name: str, alias: str, version: int | None, weight: float, reason: str,
             by: str, experiment_id: int | None) -> None:
        row = session.scalars(select(ModelAlias).where(ModelAlias.name == name, ModelAlias.alias == alias)
                              .with_for_update()).one_or_none()
        before = session.get(ModelVersion, row.version_id).version if row is not None else None
        if version is None and before is None:
            raise ConfigError(f"{name}@{alias} is not set; name a version")
        target = self._version(session, name, version if version is not None else before)
        if row is not None and row.version_id == target.id and row.weight == weight and (
                experiment_id is None or row.experiment_id == experiment_id):
            return  # already so (a concurrent run set it): nothing changed, nothing to record
        if row is None:
            row = ModelAlias(name=name, alias=alias, version_id=target.id)
            session.add(row)
        row.version_id, row.weight = target.id, weight
        if experiment_id is not None or alias == "champion":
            row.experiment_id = experiment_id
        session.add(AliasChange(name=name, alias=alias, from_version=before, to_version=target.version,
                                weight=weight, changed_by=by, reason=reason, experiment_id=experiment_id))

    @staticmethod
    def _version(session: Session, name: str, version: int) -> ModelVersion:
        record = session.scalars(select(ModelVersion).where(ModelVersion.name == name,
                                                            ModelVersion.version == version)).one_or_none()
        if record is None:
            raise ConfigError(f"{name} has no version {version}")
        return record

    def promote(self, name: str, *, reason: str, by: str | None = None) -> int:
        """The challenger becomes champion at 100 %; the challenger alias drops to weight 0. Returns the
        version."""
        by = by or who()
        with Session(self.engine) as session, session.begin():
            challenger = self._alias(session, name, "challenger")
            version = session.get(ModelVersion, challenger.version_id).version
            self._set(session, name, "champion", version, 1.0, reason, by, challenger.experiment_id)
            self._set(session, name, "challenger", None, 0.0, reason, by, challenger.experiment_id)
            return version

    def rollback(self, name: str, alias: str, *, reason: str, by: str | None = None) -> int:
        """challenger: weight 0 at once. champion: back to the version it pointed at before its last move."""
        by = by or who()
        with Session(self.engine) as session, session.begin():
            row = self._alias(session, name, alias)
            current = session.get(ModelVersion, row.version_id).version
            if alias == "challenger":
                self._set(session, name, alias, None, 0.0, reason, by, row.experiment_id)
                return current
            moves = session.scalars(select(AliasChange).where(
                AliasChange.name == name, AliasChange.alias == "champion", AliasChange.to_version == current,
                AliasChange.from_version.is_not(None), AliasChange.from_version != current)
                .order_by(AliasChange.id.desc()).limit(1)).one_or_none()
            if moves is None:
                raise ConfigError(f"{name}@champion has no earlier version to roll back to")
            self._set(session, name, alias, moves.from_version, 1.0, reason, by, None)
            return moves.from_version

    @staticmethod
    def _alias(session: Session, name: str, alias: str) -> ModelAlias:
        row = session.scalars(select(ModelAlias).where(ModelAlias.name == name, ModelAlias.alias == alias)
                              .with_for_update()).one_or_none()
        if row is None:
            raise ConfigError(f"{name}@{alias} is not set")
        return row

    def start_experiment(self, name: str, policy: dict, *, by: str | None = None) -> Experiment:
        """A running experiment of challenger against champion; the challenger's weight stays as it is."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            champion, challenger = (self._alias(session, name, "champion"),
                                    self._alias(session, name, "challenger"))
            control, treatment = (session.get(ModelVersion, a.version_id).version
                                  for a in (champion, challenger))
            experiment = Experiment(key=f"{name}-v{treatment}-{secrets.token_hex(3)}",
                                    salt=secrets.token_hex(8), name=name, control_version=control,
                                    treatment_version=treatment, policy=policy)
            session.add(experiment)
            session.flush()
            challenger.experiment_id = experiment.id
        return experiment

    def experiment(self, experiment_id: int) -> Experiment:
        with Session(self.engine, expire_on_commit=False) as session:
            found = session.get(Experiment, experiment_id)
        if found is None:
            raise ConfigError(f"no experiment {experiment_id}")
        return found

    def end_experiment(self, experiment_id: int, status: str, rationale: str) -> None:
        with Session(self.engine) as session, session.begin():
            experiment = session.get(Experiment, experiment_id)
            experiment.status, experiment.ended_at, experiment.decision_rationale = status, _now(), rationale

    def route(self, name: str) -> Route | None:
        """The live routing of `name`, or None when it has no champion."""
        with Session(self.engine) as session:
            rows = {a.alias: a for a in session.scalars(select(ModelAlias).where(ModelAlias.name == name))}
            if "champion" not in rows:
                return None
            champion = _arm(session.get(ModelVersion, rows["champion"].version_id))
            row = rows.get("challenger")
            if row is None:
                return Route(name, champion)
            experiment = session.get(Experiment, row.experiment_id) if row.experiment_id else None
            running = experiment is not None and experiment.status == "running"
            return Route(name, champion, _arm(session.get(ModelVersion, row.version_id)), row.weight,
                         experiment.id if running else None, experiment.key if running else None,
                         experiment.salt if running else None)


def _arm(record: ModelVersion) -> Arm:
    return Arm(record.version, record.served_name, record.base_url, record.price_in_per_mtok,
               record.price_out_per_mtok)
