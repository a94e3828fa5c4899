"""Two machines on loopback: a Prefect server and the registry on PostgreSQL, run storage in an S3-compatible
server (moto), one emulator playing OpenAI, and two process workers on one pool, each in its own working
directory with its own LORAFLOW_HOME, PREFECT_HOME and temporary folder.

The quickstart is deployed with `loraflow deploy --run-root s3://bucket/runs` and triggered RUNS times over
DATASETS different splits (data.split_salt), so runs on the same data race each other for one upload and one
job. Then a worker is killed while its run polls the job; the zombie automation that `loraflow deploy` saved
marks the run Crashed once its heartbeats stop (here after 60 s), it is retried with `prefect flow-run retry`,
and the other worker finishes it.

Needs the PostgreSQL server .ci/run starts (LORAFLOW_TEST_POSTGRES_URL). About two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import pytest
import yaml

from cli.deployments import read_specs
from cli.zombies import SILENCE_ENV
from tests.cli.test_deployments import _wait_healthy, free_port
from tests.flows.pipelines import TARGET_ONLY
from tests.s3 import keys, s3_server

PG = os.environ.get("LORAFLOW_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.skipif(not PG, reason="needs the PostgreSQL server that .ci/run starts "
                                                "(LORAFLOW_TEST_POSTGRES_URL)"),
              pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
RUNS, DATASETS = 6, 3
POOL, DEPLOYMENT = "loraflow-process", "finetune/finetune"
RUN_ROOT = "s3://bucket/runs"
RUN_FILES = {"manifest.json", "report.json", "report.md", "decision.json", "data/train.jsonl",
             "data/eval.jsonl", "eval/outputs.jsonl", "eval/report.md", "training/health.json"}


def pipeline(salt: str) -> dict:
    deployed = read_specs()[0].parameters["pipeline"]
    return {**deployed, "data": {**deployed["data"], "split_salt": salt},
            "eval": {**deployed["eval"], "suites": TARGET_ONLY},
            "poll": {"min_interval_s": 0.2, "max_interval_s": 1, "max_wait_s": 300}}


@contextmanager
def databases(url: str) -> Iterator[tuple[str, str]]:
    """A fresh database for the Prefect server and a fresh schema for the registry; both dropped after."""
    from sqlalchemy import create_engine, text

    name = f"lf_workers_{os.getpid()}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
        connection.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {name}"))
    server = urlsplit(url)
    try:
        yield (f"postgresql+asyncpg://{server.netloc}/{name}", f"{url}?options=-csearch_path%3D{name}")
    finally:
        with engine.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        engine.dispose()


class Machines:
    """The services and the two workers; `api` is the Prefect API, `env` what every process gets."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.processes: dict[str, subprocess.Popen] = {}
        self.local_runs_before: set[str] = set()

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def worker_dir(self, name: str) -> Path:
        return self.root / name

    def start_worker(self, name: str) -> None:
        own = self.worker_dir(name)
        for folder in ("home", "prefect", "tmp"):
            (own / folder).mkdir(parents=True, exist_ok=True)
        env = {**self.env, "LORAFLOW_HOME": str(own / "home"), "PREFECT_HOME": str(own / "prefect"),
               "TMPDIR": str(own / "tmp")}
        self.start(name, [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name,
                          "--limit", "1"], env, own)

    def ran_on(self, flow_run: UUID) -> list[str]:
        """The workers that started the run: each submission a worker tried, less those the server refused
        because the other worker had it already (workers race for a run; one wins)."""
        def started(log: str) -> bool:
            return (log.count(f"submitting flow run '{flow_run}'")
                    > log.count(f"Aborted submission of flow run '{flow_run}'"))

        return [name for name in ("worker-a", "worker-b") if started(self.log(name))]

    def kill(self, name: str) -> None:
        """The machine is lost: the worker and every process it started, at once."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def counters(self) -> dict:
        url = f"{self.env['LORAFLOW_EMULATOR_URL']}/_emulator/counters"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    root = tmp_path_factory.mktemp("machines")
    with databases(PG) as (prefect_db, registry_url), s3_server() as s3:
        api = f"http://127.0.0.1:{free_port()}/api"
        env = {**os.environ, **s3, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
               "LORAFLOW_REGISTRY_URL": registry_url, "PYTHONPATH": str(REPO), SILENCE_ENV: "60"}
        env.pop("LORAFLOW_RUN_ROOT", None)
        machines = Machines(root, env)
        try:
            server = machines.start("server", [sys.executable, "-m", "prefect", "server", "start", "--host",
                                               "127.0.0.1", "--port", api.split(":")[2].split("/")[0],
                                               "--no-ui"],
                                    {**env, "PREFECT_HOME": str(root / "server"),
                                     "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db}, root)
            emulator = machines.start("emulator", [sys.executable, "-m", "cli.app", "emulator", "--port", "0",
                                                   "--state-dir", str(root / "emulator")], env, root)
            env["LORAFLOW_EMULATOR_URL"] = _emulator_url(machines, emulator)
            _wait_healthy(api, server, timeout_s=180)
            _deploy(root, env)
            for name in ("worker-a", "worker-b"):
                machines.start_worker(name)
            with _environment(s3 | {"PREFECT_API_URL": api}):
                yield machines
        finally:
            machines.stop()


def _emulator_url(machines: Machines, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, machines.log("emulator")
        for line in machines.log("emulator").splitlines():
            if line.startswith("LORAFLOW_EMULATOR_URL="):
                return line.split("=", 1)[1].strip()
        time.sleep(0.2)
    raise AssertionError("the emulator never named its URL:\n" + machines.log("emulator"))


def _deploy(root: Path, env: dict[str, str]) -> None:
    spec = read_specs()[0]  # the finetune deployment alone: no schedule fires during the test
    prefect_file = root / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump({"deployments": [{
        "name": spec.name, "entrypoint": spec.entrypoint, "parameters": spec.parameters,
        "work_pool": {"name": POOL}}]}))
    done = subprocess.run([sys.executable, "-m", "cli.app", "deploy", "--prefect-file", str(prefect_file),
                           "--run-root", RUN_ROOT], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """This process talks to the module's server and bucket (and to nothing of the session's harness)."""
    import fsspec
    from prefect.settings import PREFECT_API_URL, temporary_settings

    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    fsspec.get_filesystem_class("s3").clear_instance_cache()
    try:
        with temporary_settings(updates={PREFECT_API_URL: values["PREFECT_API_URL"]}):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        fsspec.get_filesystem_class("s3").clear_instance_cache()


def trigger(salt: str) -> UUID:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        parameters = {"pipeline": pipeline(salt)}
        return client.create_flow_run_from_deployment(deployment.id, parameters=parameters).id


def flow_run(run_id: UUID):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_final(run_ids: list[UUID], timeout_s: float = 600) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [flow_run(run_id) for run_id in run_ids]
        if all(run.state is not None and run.state.is_final() for run in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"runs still going after {timeout_s} s: {[r.state_name for r in runs]}")


def local_runs() -> set[str]:
    """Run directories under the repository's own runs/ (where a local run_root would put them)."""
    return {str(p) for p in (REPO / "runs").glob("*/*")} if (REPO / "runs").is_dir() else set()


def run_root_of(run) -> str:
    """The run directory the flow run returned, read back from the Prefect result it persisted in the
    bucket (this process has no result storage configured: the record names the block)."""
    return str(run.state.result().run_dir)


def test_six_runs_on_two_workers_keep_their_files_in_the_bucket_and_pay_once(machines: Machines) -> None:
    started = time.monotonic()
    machines.local_runs_before = local_runs()
    ids = [trigger(f"salt-{i % DATASETS}") for i in range(RUNS)]
    runs = wait_final(ids)
    elapsed = time.monotonic() - started
    assert [run.state_name for run in runs] == ["Completed"] * RUNS, [
        (run.state_name, run.state.message) for run in runs]
    owners = {run.id: machines.ran_on(run.id) for run in runs}
    assert all(len(names) == 1 for names in owners.values()), owners
    assert {names[0] for names in owners.values()} == {"worker-a", "worker-b"}, "both workers ran flows"

    roots = {run.id: run_root_of(run) for run in runs}
    assert all(root.startswith(f"{RUN_ROOT}/quickstart/") for root in roots.values()), roots
    env = machines.env
    for root in roots.values():
        prefix = root.removeprefix("s3://bucket/") + "/"
        stored = {key.removeprefix(prefix) for key in keys(env, prefix=prefix)}
        assert RUN_FILES <= stored, sorted(RUN_FILES - stored)
    assert keys(env, prefix="runs/.prefect-results/"), "the flow results persist in the same store"

    counters = machines.counters()
    # one upload of train+validation and one job per distinct dataset, whichever worker got there first
    assert (counters["files_created"], counters["jobs_created"]) == (2 * DATASETS, DATASETS), counters

    for name in ("worker-a", "worker-b"):  # each machine's disk holds nothing of the runs
        own = machines.worker_dir(name)
        assert not list((own / "tmp").glob("loraflow-run-*")), name
        assert not list(own.rglob("manifest.json")), name
    assert local_runs() == machines.local_runs_before  # the flows ran in the repository: nothing landed there

    a = next(roots[i] for i, names in owners.items() if names == ["worker-a"])
    b = next(roots[i] for i, names in owners.items() if names == ["worker-b"])
    compared = subprocess.run([sys.executable, "-m", "cli.app", "compare", a, b, "--markdown"], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "| decision |" in compared.stdout and "data.split_salt" in compared.stdout
    print(f"{RUNS} runs on 2 workers: {elapsed:.0f} s")


def test_a_run_whose_worker_is_lost_is_retried_on_the_other_without_paying_twice(machines: Machines) -> None:
    before = machines.counters()
    polls = "GET /v1/fine_tuning/jobs/{job_id}"
    run_id = trigger("salt-killed")
    deadline = time.monotonic() + 300
    while True:  # the kill lands while the run polls the job it created
        now = machines.counters()
        if now["jobs_created"] > before["jobs_created"] and \
                now["requests"].get(polls, 0) >= before["requests"].get(polls, 0) + 2:
            break
        assert time.monotonic() < deadline, "the run never reached its job"
        time.sleep(0.05)
    owner = machines.ran_on(run_id)
    assert len(owner) == 1, owner
    lost, other = owner[0], ({"worker-a", "worker-b"} - set(owner)).pop()
    flow_process = int(flow_run(run_id).infrastructure_pid.rpartition(":")[2])
    machines.kill(lost)
    with suppress(ProcessLookupError):  # the flow run's process too, wherever the worker had put it
        os.kill(flow_process, signal.SIGKILL)
    assert flow_run(run_id).state_name == "Running"  # nobody tells the server: the run looks alive

    deadline = time.monotonic() + 180  # the automation `loraflow deploy` saved (cli/zombies.py) crashes it
    while (state := flow_run(run_id).state_name) != "Crashed":
        assert state == "Running" and time.monotonic() < deadline, state
        time.sleep(1)
    retried = subprocess.run([sys.executable, "-m", "prefect", "flow-run", "retry", str(run_id)],
                             env=machines.env, capture_output=True, text=True, timeout=120, check=False)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    [run] = wait_final([run_id], timeout_s=300)
    assert run.state_name == "Completed", run.state.message
    assert other in machines.ran_on(run_id)
    after = machines.counters()
    assert after["files_created"] - before["files_created"] == 2, after  # uploaded once
    assert after["jobs_created"] - before["jobs_created"] == 1, after  # one job, polled again, not re-created
    root = run_root_of(run).removeprefix("s3://bucket/") + "/"
    assert RUN_FILES <= {key.removeprefix(root) for key in keys(machines.env, prefix=root)}
