"""The deployments of deployments/prefect.yaml, registered with a Prefect API or served from one process.

prefect.yaml stays the single description (names, parameters, schedules, work pool); this module reads
it so that `loraflow deploy` (work pool + workers) and `loraflow serve` (one process, no worker) run the
same deployments. `prefect deploy --prefect-file deployments/prefect.yaml` also works, with
LORAFLOW_REPO set on the worker for its pull step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Schedule

from providers.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    parameters: dict[str, Any]
    schedules: list[Schedule]
    description: str
    tags: list[str]
    concurrency_limit: int | None
    work_pool: str


def read_specs(path: Path = PREFECT_FILE) -> list[DeploymentSpec]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    return [_spec(path, index, entry) for index, entry in enumerate(document.get("deployments") or [])]


def _spec(path: Path, index: int, entry: dict[str, Any]) -> DeploymentSpec:
    try:
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                     for s in entry.get("schedules") or []]
        return DeploymentSpec(
            name=entry["name"], entrypoint=entry["entrypoint"], parameters=entry.get("parameters") or {},
            schedules=schedules, description=entry.get("description", ""), tags=entry.get("tags") or [],
            concurrency_limit=entry.get("concurrency_limit"), work_pool=entry["work_pool"]["name"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: deployments.{index}: missing or malformed {exc}") from None


_ENDPOINT_KEYS = (("provider", "endpoint"), ("eval", "judge", "endpoint"))


def endpoints(specs: list[DeploymentSpec]) -> list[object]:
    """The endpoints the deployments' pipelines name (`emulator` for an offline rehearsal). The parameters
    are not validated yet (the flow does that when it runs), so any level may be missing or not a mapping."""
    found = []
    for spec, keys in itertools.product(specs, _ENDPOINT_KEYS):
        value: object = spec.parameters.get("pipeline")
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        found.append(value)
    return found


def _flow(spec: DeploymentSpec) -> Flow:
    file, _, name = spec.entrypoint.partition(":")
    return Flow.from_source(source=str(REPO), entrypoint=f"{file}:{name}")


def deploy(specs: list[DeploymentSpec]) -> list[str]:
    """Register every deployment with the Prefect API; the process work pool is created if missing."""
    names = []
    for spec in specs:
        _ensure_process_pool(spec.work_pool)
        _flow(spec).deploy(name=spec.name, work_pool_name=spec.work_pool, parameters=spec.parameters,
                           schedules=spec.schedules, description=spec.description, tags=spec.tags,
                           concurrency_limit=spec.concurrency_limit, print_next_steps=False)
        names.append(spec.name)
    return names


def serve(specs: list[DeploymentSpec], *, limit: int | None = None) -> None:
    """Serve every deployment from this process until it is stopped. Schedules stay active on shutdown."""
    from prefect import serve as prefect_serve

    deployments = [_flow(spec).to_deployment(name=spec.name, parameters=spec.parameters,
                                             schedules=spec.schedules, description=spec.description,
                                             tags=spec.tags, concurrency_limit=spec.concurrency_limit)
                   for spec in specs]
    # pause_on_shutdown=False: a restarted server must not leave the quarterly schedule silently paused
    prefect_serve(*deployments, limit=limit, pause_on_shutdown=False)


def _ensure_process_pool(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
