"""Milestones and progress as log records on the `loraflow` logger.

Tasks report what they do without knowing who listens: the CLI renders the records as a rich progress
display, and Prefect ships them to the UI when `loraflow` is one of its extra loggers. A training job's
progress also goes out as Prefect events and a progress artifact (tasks/training/report.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("loraflow")


@dataclass(frozen=True)
class Progress:
    stage: str
    completed: float | None = None
    total: float | None = None


def report_to_prefect() -> None:
    """Send `loraflow` records to the current Prefect run's log, however the flow was started.

    The CLI names `loraflow` in PREFECT_LOGGING_EXTRA_LOGGERS, but a flow process that a worker or
    `prefect deployment run` starts has neither that setting nor an INFO level here (Prefect's root logger
    is at WARNING), so without this a run started from the UI shows none of these lines. Idempotent."""
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    if not any(isinstance(handler, APILogHandler) for handler in log.handlers):
        log.addHandler(APILogHandler())
    # Prefect's own console handler too: retrain and migrate print the run log, not the live display
    for handler in log.handlers:
        if isinstance(handler, APILogHandler | PrefectConsoleHandler) and not any(
                isinstance(f, ProgressThrottle) for f in handler.filters):
            handler.addFilter(ProgressThrottle())


class ProgressThrottle(logging.Filter):
    """Keeps a run's log readable: of a stage's progress records only every tenth of the way (and the last)
    pass, where the live display wants them all (an evaluation of 544 answers is 544 records)."""

    def __init__(self, share: float = 0.1) -> None:
        super().__init__()
        self.share = share
        self.passed: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        step = getattr(record, "loraflow_progress", None)
        if step is None or step.completed is None or not step.total:
            return True
        last = self.passed.get(step.stage)
        if last is None or step.completed >= step.total or step.completed - last >= self.share * step.total \
                or step.completed < last:
            self.passed[step.stage] = step.completed
            return True
        return False


def milestone(stage: str, message: str, *args: object) -> None:
    """A finished step worth a line in the run log (`stage` is one of the pipeline's stage names)."""
    log.info(message, *args, extra={"loraflow_progress": Progress(stage)})


def progress(stage: str, completed: float, total: float | None, message: str, *args: object) -> None:
    """How far a long stage has come (training steps, evaluated items)."""
    log.info(message, *args, extra={"loraflow_progress": Progress(stage, completed, total)})
