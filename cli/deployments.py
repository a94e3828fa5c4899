"""The deployments of deployments/prefect.yaml, registered with a Prefect API or served from one process.

prefect.yaml stays the single description (names, parameters, schedules, work pool); this module reads
it so that `loraflow deploy` (work pool + workers) and `loraflow serve` (one process, no worker) run the
same deployments. `prefect deploy --prefect-file deployments/prefect.yaml` also works, with
LORAFLOW_REPO set on the worker for its pull step.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Schedule

from cli.zombies import TAG
from providers.errors import ConfigError
from tasks.configfile import read_yaml
from tasks.runstore import RUN_ROOT_ENV, is_remote, run_path

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"
POOLS = REPO / "deployments" / "pools"


@dataclass(frozen=True)
class PoolSpec:
    """A work pool of deployments/pools/NAME.yaml: its worker type and base job template."""

    name: str
    type: str
    description: str
    base_job_template: dict[str, Any]

    @property
    def image(self) -> str | None:
        """The image runs start from (container pools); the template's default, overridable per deploy."""
        image = self.base_job_template.get("variables", {}).get("properties", {}).get("image", {})
        return image.get("default")


def pool_names() -> list[str]:
    return sorted(path.stem for path in POOLS.glob("*.yaml"))


def read_pool(name: str) -> PoolSpec | None:
    """The pool file for `name`, or None when there is none (a process pool, created as it is)."""
    path = POOLS / f"{name}.yaml"
    if not path.is_file():
        return None
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return PoolSpec(name=name, type=document["type"], description=document.get("description", ""),
                        base_job_template=document["base_job_template"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: missing or malformed {exc}") from None


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
    document = read_yaml(path, "Prefect deployments file")
    if not isinstance(document, dict) or not isinstance(document.get("deployments") or [], list):
        raise ConfigError(f"{path}: expected a mapping with a `deployments:` list")
    return [_spec(path, index, entry) for index, entry in enumerate(document.get("deployments") or [])]


def _spec(path: Path, index: int, entry: dict[str, Any]) -> DeploymentSpec:
    try:
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                     for s in entry.get("schedules") or []]
        return DeploymentSpec(
            name=entry["name"], entrypoint=entry["entrypoint"], parameters=entry.get("parameters") or {},
            schedules=schedules, description=entry.get("description", ""),
            tags=sorted({*(entry.get("tags") or []), TAG}),  # TAG: what the zombie automation watches
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


def _image_flow(spec: DeploymentSpec) -> Flow:
    """The flow for a container pool: its code is in the image (the Dockerfile's WORKDIR mirrors this
    repository), so the deployment keeps the entrypoint relative to the repository and no pull step."""
    from prefect.flows import load_flow_from_entrypoint

    cwd = Path.cwd()
    os.chdir(REPO)  # Prefect records the entrypoint relative to the working directory
    try:
        return load_flow_from_entrypoint(spec.entrypoint)
    finally:
        os.chdir(cwd)


def run_store_env(run_root: str | None) -> dict[str, str]:
    """The environment every flow run of a deployment gets for `run_root`: LORAFLOW_RUN_ROOT, and for an
    object store Prefect's result persistence in the same store (a RemoteFileSystem block, fsspec underneath,
    saved here under a name derived from the URL), so a flow run retried on another worker finds what the
    first attempt persisted. A local run root keeps Prefect's results where each machine keeps them."""
    if not run_root:
        return {}
    if not is_remote(run_path(run_root)):
        return {RUN_ROOT_ENV: run_root}
    from prefect.filesystems import RemoteFileSystem

    name = f"loraflow-results-{hashlib.sha256(run_root.encode()).hexdigest()[:12]}"
    RemoteFileSystem(basepath=f"{run_root.rstrip('/')}/.prefect-results").save(name, overwrite=True)
    return {RUN_ROOT_ENV: run_root, "PREFECT_DEFAULT_RESULT_STORAGE_BLOCK": f"remote-file-system/{name}",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"}


def deploy(specs: list[DeploymentSpec], *, pool: str | None = None, image: str | None = None,
           run_root: str | None = None) -> list[str]:
    """Register every deployment with the Prefect API, on `pool` when given (else each spec's own). A pool
    with a file in deployments/pools/ is created from it if missing; any other missing pool is a process
    pool. On a container pool the runs start from `image` (default: the pool file's image). With `run_root`
    in an object store, every run gets it and keeps its Prefect results there (`run_store_env`)."""
    from cli.zombies import heartbeat_env, watch_for_zombies

    names = []
    env = run_store_env(run_root) | heartbeat_env()
    watch_for_zombies()
    for spec in specs:
        target = pool or spec.work_pool
        found = _ensure_pool(target)
        options: dict[str, Any] = {
            "name": spec.name, "work_pool_name": target, "parameters": spec.parameters,
            "schedules": spec.schedules, "description": spec.description, "tags": spec.tags,
            "concurrency_limit": spec.concurrency_limit, "print_next_steps": False}
        if env:
            options["job_variables"] = {"env": env}
        if found is not None and found.type != "process":
            chosen = image or found.image
            if not chosen:
                raise ConfigError(f"work pool {target!r} runs containers: give --image")
            _image_flow(spec).deploy(image=chosen, build=False, push=False, **options)
        else:
            _flow(spec).deploy(**options)
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


def _ensure_pool(name: str) -> PoolSpec | None:
    """Create the work pool `name` if missing; returns its pool file, if it has one."""
    spec = read_pool(name)
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=name, type=spec.type if spec else "process",
                description=spec.description if spec else None,
                base_job_template=spec.base_job_template if spec else {}))
    return spec
