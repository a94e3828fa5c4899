from __future__ import annotations

import logging

import pytest

from providers.base import JobRef, JobState, JobStatus
from tasks.training.report import JobReport

JOB = JobRef(provider="local", job_id="local-1")


@pytest.mark.parametrize(("state", "message", "step", "shown"), [
    (JobState.RUNNING, "building the tiny base model", None, "running building the tiny base model"),
    (JobState.RUNNING, "", None, "running starting: no training step reported yet"),
    (JobState.PENDING, "", None, "pending waiting in the provider's queue"),
    (JobState.PENDING, "validating files\nmore detail", None, "pending validating files"),
    (JobState.RUNNING, "training", 3, "running step 3/10"),  # once steps come, they tell the story
])
def test_a_job_before_its_first_step_says_what_it_is_doing(state: JobState, message: str, step: int | None,
                                                            shown: str, caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    status = JobStatus(job=JOB, state=state, vendor_state=state.value, message=message, step=step,
                       total_steps=10)
    with caplog.at_level(logging.INFO, logger="loraflow"):
        JobReport().observed(status, None)
    assert [record.getMessage() for record in caplog.records] == [shown]


def test_the_run_log_gets_every_tenth_of_a_stages_progress_and_every_milestone() -> None:
    from tasks.progress import Progress, ProgressThrottle

    throttle = ProgressThrottle()

    def passes(stage: str, completed: float | None, total: float | None) -> bool:
        record = logging.LogRecord("loraflow", logging.INFO, __file__, 0, "x", (), None)
        record.loraflow_progress = Progress(stage, completed, total)
        return throttle.filter(record)

    evaluated = [n for n in range(1, 245) if passes("evaluate", n, 244)]
    assert evaluated == [1, 26, 51, 76, 101, 126, 151, 176, 201, 226, 244]
    assert passes("evaluate", None, None)  # a milestone always passes
    assert passes("train", 0, 10) and passes("train", 1, 10) and not passes("train", 1.5, 10)


def test_prefects_console_and_api_handlers_are_throttled_and_other_handlers_are_not() -> None:
    """retrain and migrate print Prefect's console log: 544 answers must not be 544 lines there."""
    from prefect.logging.handlers import PrefectConsoleHandler

    from tasks.progress import ProgressThrottle, log, report_to_prefect

    console, live, before = PrefectConsoleHandler(), logging.Handler(), list(log.handlers)
    log.addHandler(console)
    log.addHandler(live)
    try:
        report_to_prefect()
        report_to_prefect()  # idempotent
        throttled = {type(h).__name__: sum(isinstance(f, ProgressThrottle) for f in h.filters)
                     for h in log.handlers}
        assert throttled["PrefectConsoleHandler"] == 1 and throttled["APILogHandler"] == 1
        assert not live.filters
    finally:
        for handler in list(log.handlers):
            if handler not in before:
                log.removeHandler(handler)
