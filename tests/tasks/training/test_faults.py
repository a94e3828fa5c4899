"""Faults survived: each injected fault on each stage, for every hosted provider on the emulator.

The table (fault x stage -> outcome) is printed at the end of this module's run; `python -m
tests.tasks.training.fault_matrix` prints it alone. See fault_matrix.py for what a case does and asserts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("together", reason="the together extra is not installed")

from tasks.registry import Registry
from tasks.training.submit import submission_key, submit_job, upload_dataset
from tests.tasks.training.fault_matrix import (
    FAULTS,
    ROUTES,
    SPECS,
    STAGES,
    TIMES,
    Outcome,
    build_provider,
    dataset,
    emulator,
    run_case,
    table,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> Iterator[list[Outcome]]:
    collected: list[Outcome] = []
    yield collected
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None and collected:
        with capture.global_and_fixture_disabled():
            reporter.write_sep("-", "faults injected and survived")
            reporter.write_line(table(collected))


@pytest.fixture(scope="module", params=list(ROUTES))
def on_emulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, object]]:
    with emulator() as server:
        yield request.param, server


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_pipeline_survives(on_emulator: tuple, fault: str, stage: str, tmp_path: Path,
                               outcomes: list[Outcome]) -> None:
    provider_name, server = on_emulator
    outcome = run_case(server, provider_name, fault, stage, tmp_path)
    outcomes.append(outcome)

    # a fault that lets the work through is recovered (job by key, upload by content) without repeating
    assert outcome.fired == TIMES or (outcome.fired >= 1 and FAULTS[fault]["kind"] in ("drop", "timeout",
                                                                                      "malformed"))
    assert outcome.completed, f"{fault} on {stage}: {outcome.error or outcome.infra_error}"
    assert outcome.jobs_created == 1, f"{outcome.jobs_created} jobs for one submission"
    assert outcome.recorded_job_id or outcome.recovered_job_id, "the job id is lost"


@pytest.mark.parametrize("provider_name", list(ROUTES))
def test_a_lost_registry_never_pays_for_a_second_job(provider_name: str, tmp_path: Path) -> None:
    """Run, lose the registry (a new machine, a fresh database), run again: the provider is asked by the
    submission key before anything is created, and the second run re-attaches to the first run's job."""
    with emulator() as server:
        provider, target, spec = build_provider(provider_name, server), f"{provider_name}@emulator", \
            SPECS[provider_name]
        data = dataset(tmp_path, f"{provider_name}/registry-loss")
        key = submission_key(target, {}, spec, data.sha256)
        jobs = []
        for machine in ("first", "second"):
            registry = Registry(f"sqlite:///{tmp_path / f'{machine}.db'}")  # nothing carried over
            uploaded = upload_dataset.fn(provider, data, registry, target)
            jobs.append(submit_job.fn(provider, spec, uploaded, registry, target, key))
            assert registry.latest_job(key).job_id == jobs[-1].job_id
        assert jobs[0].job_id == jobs[1].job_id
        assert server.state.counters["jobs_created"] == 1
