"""Faults survived: each injected fault on each stage, for OpenAI and Together on the emulator.

The table (fault x stage -> outcome) is printed at the end of this module's run; `python -m
tests.tasks.training.fault_matrix` prints it alone. See fault_matrix.py for what a case does and asserts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("together", reason="the together extra is not installed")

from tests.tasks.training.fault_matrix import (
    FAULTS,
    ROUTES,
    STAGES,
    TIMES,
    Outcome,
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
