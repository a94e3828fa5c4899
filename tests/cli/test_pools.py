"""The work pools of deployments/pools/ render to valid Kubernetes Jobs and Docker containers.

The base job templates are rendered the way a worker renders them (prefect-kubernetes' and prefect-docker's
job configurations, prepare_for_flow_run included), and the Kubernetes manifest is read into the `kubernetes`
client's API models, so a misspelt field, a wrong type or a placeholder left unrendered fails here, not on a
cluster.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from cli.deployments import pool_names, read_pool

pytest.importorskip("prefect_kubernetes")
pytest.importorskip("prefect_docker")
# rendering asks the Prefect API about block references: the session's server, not a temporary one per call
pytestmark = pytest.mark.usefixtures("prefect_api")


def _flow_run() -> Any:
    from prefect.client.schemas.objects import FlowRun

    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="brave-otter")


def _kubernetes_job(values: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from kubernetes.client import ApiClient
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = read_pool("loraflow-kubernetes").base_job_template
    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values))
    config.prepare_for_flow_run(_flow_run())
    manifest = config.job_manifest
    return manifest, ApiClient().deserialize(json.dumps(manifest), "V1Job", "application/json")


def test_the_pool_files_are_the_kubernetes_and_docker_pools() -> None:
    assert pool_names() == ["loraflow-docker", "loraflow-kubernetes"]
    assert {read_pool(name).type for name in pool_names()} == {"docker", "kubernetes"}
    assert read_pool("loraflow-process") is None  # no file: a plain process pool


def test_a_local_training_run_gets_gpus_a_gpu_node_the_keys_secret_and_shared_memory() -> None:
    manifest, job = _kubernetes_job({"image": "ghcr.io/acme/loraflow:0.1.0", "gpus": "2"})
    assert "{{" not in json.dumps(manifest)
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.image == "ghcr.io/acme/loraflow:0.1.0"
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert [source.secret_ref.name for source in container.env_from] == ["loraflow-provider-keys"]
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "NoSchedule")]
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("shm", "/dev/shm")]
    assert pod.volumes[0].empty_dir.medium == "Memory"
    assert container.args[:3] == ["prefect", "flow-run", "execute"]
    assert {e.name for e in container.env} >= {"PREFECT__FLOW_RUN_ID"}
    assert pod.restart_policy == "Never"


def test_a_hosted_provider_run_asks_for_no_gpu_and_any_node() -> None:
    _, job = _kubernetes_job({"gpus": "0", "node_selector": {}, "keys_secret": "team-keys"})
    (container,) = job.spec.template.spec.containers
    assert container.resources.limits["nvidia.com/gpu"] == "0"
    assert not job.spec.template.spec.node_selector
    assert container.env_from[0].secret_ref.name == "team-keys"


def test_the_docker_pool_hands_the_gpus_and_keeps_home_and_runs_in_volumes() -> None:
    from docker.types import DeviceRequest
    from prefect_docker.worker import DockerWorkerJobConfiguration

    template = read_pool("loraflow-docker").base_job_template
    config = asyncio.run(DockerWorkerJobConfiguration.from_template_and_values(template, {}))
    config.prepare_for_flow_run(_flow_run())
    assert config.image == "loraflow:latest"
    assert config.volumes == ["loraflow-home:/var/lib/loraflow", "loraflow-runs:/opt/loraflow/runs"]
    (request,) = [DeviceRequest(**r) for r in config.container_create_kwargs["device_requests"]]
    assert (request.driver, request.count, request.capabilities) == ("nvidia", -1, [["gpu"]])


def test_the_dockerfile_installs_real_extras_and_copies_every_package_to_the_pools_workdir() -> None:
    """No docker here: what can go wrong without building is checked against pyproject and the pool files."""
    import re
    import tomllib

    from cli.deployments import REPO

    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = re.search(r"^ARG EXTRAS=(\S+)$", dockerfile, re.MULTILINE).group(1).split(",")
    assert set(extras) <= set(project["project"]["optional-dependencies"])
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    assert {package.split(".")[0] for package in project["tool"]["setuptools"]["packages"]} <= copied
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)
    home = re.search(r"LORAFLOW_HOME=(\S+)", dockerfile).group(1)
    volumes = read_pool("loraflow-docker").base_job_template["variables"]["properties"]["volumes"]["default"]
    assert volumes == [f"loraflow-home:{home}", f"loraflow-runs:{workdir}/runs"]
