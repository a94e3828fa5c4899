"""What a training job is doing, published while the flow waits on it: Prefect events, a progress artifact and
the run log's progress records."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event

from providers.base import JobState, JobStatus
from tasks.progress import progress


class JobReport:
    """Publishes what a job is doing: Prefect events per transition (`loraflow.job.<state>`, `.stalled`,
    `.cancelled`) and a progress artifact with step, loss and ETA. Outside a Prefect run only the log
    records are written."""

    def __init__(self, emit: Callable[..., object] = emit_event) -> None:
        self._emit = emit
        self._artifact: UUID | None = None

    def event(self, name: str, status: JobStatus, **payload: object) -> None:
        self._emit(event=f"loraflow.job.{name}",
                   resource={"prefect.resource.id": f"loraflow.job.{status.job.job_id}",
                             "prefect.resource.name": status.job.job_id,
                             "loraflow.provider": status.job.provider},
                   payload={"state": status.state.value, "vendor_state": status.vendor_state,
                            "step": status.step, "total_steps": status.total_steps, **payload})

    def observed(self, status: JobStatus, remaining_s: float | None) -> None:
        loss = status.metrics.get("train_loss")
        parts = [status.state.value]
        if status.step is None and (doing := _doing(status)):
            parts.append(doing)
        if status.step is not None:
            parts.append(f"step {status.step}/{status.total_steps or '?'}")
        if loss is not None:
            parts.append(f"loss={loss:.3f}")
        if remaining_s is not None and remaining_s > 0 and not status.state.is_terminal:
            parts.append(f"ETA {_duration(remaining_s)}")
        text = " ".join(parts)
        done = status.step or 0
        progress("train", done, status.total_steps, "%s", text)
        self._artifact_update(status, text)

    def _artifact_update(self, status: JobStatus, text: str) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        percent = 100.0 if status.state is JobState.SUCCEEDED else (
            100.0 * status.step / status.total_steps if status.step is not None and status.total_steps
            else 0.0)
        description = f"job {status.job.job_id}: {text}"
        if self._artifact is None:
            self._artifact = create_progress_artifact(percent, key="finetune-progress",
                                                      description=description)
        else:
            update_progress_artifact(self._artifact, percent, description=description)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _doing(status: JobStatus) -> str:
    """What a job does before its first step: the provider's own words (building or loading the base model,
    validating files), else what its state means, so a long wait is never a bare "running 0/1"."""
    if status.message:
        return status.message.splitlines()[0][:120]
    return {JobState.PENDING: "waiting in the provider's queue",
            JobState.RUNNING: "starting: no training step reported yet"}.get(status.state, "")
