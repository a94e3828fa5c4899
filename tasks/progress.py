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


def milestone(stage: str, message: str, *args: object) -> None:
    """A finished step worth a line in the run log (`stage` is one of the pipeline's stage names)."""
    log.info(message, *args, extra={"loraflow_progress": Progress(stage)})


def progress(stage: str, completed: float, total: float | None, message: str, *args: object) -> None:
    """How far a long stage has come (training steps, evaluated items)."""
    log.info(message, *args, extra={"loraflow_progress": Progress(stage, completed, total)})
