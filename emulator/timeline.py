"""A job's scripted life: its status, events and checkpoints as a pure function of the clock.

Nothing runs in the background. A job is its creation time, a `Timeline`, and the moments a person
paused, resumed or cancelled it; `progress` replays those against "now" on every request, so the same
inputs always give the same answer, and a restarted emulator picks up where the wall clock is.

Phases, in nominal seconds (divided by `speed`): validating_files for `validating_s`, queued for
`queued_s`, running for `steps * step_s` (step i ends at i * step_s into the run), `finishing_s` more
(still running; the Together view calls it compressing, then uploading), then succeeded.
`fail_at_step=k` ends the job `failed` when step k would have ended (k=0: as soon as it starts
running); `stall_at_step=k` reports step k and then stays `running` with no new events;
`restart_at_step=k` ends the job like a failure with the error code `job_restarted`, which the Together
API turns into a restart under a new job id (the OpenAI API has no such thing and shows a failure).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

Pauses = list[tuple[float, float | None]]


@dataclass(frozen=True)
class Timeline:
    """The script a new job follows. The defaults finish a job in about 5 seconds.

    Durations are nominal seconds; `speed` > 1 runs the whole script faster (each duration is divided
    by it). `checkpoints` are spread evenly over the steps, the last one at the final step.
    """

    validating_s: float = 0.5
    queued_s: float = 0.5
    steps: int = 20
    step_s: float = 0.2
    checkpoints: int = 3
    fail_at_step: int | None = None
    fail_code: str = "invalid_training_file"
    fail_message: str = "The job failed due to an invalid training file."
    stall_at_step: int | None = None
    restart_at_step: int | None = None
    finishing_s: float = 0.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        scripted = [s for s in (self.fail_at_step, self.stall_at_step, self.restart_at_step) if s is not None]
        durations = (self.validating_s, self.queued_s, self.step_s, self.finishing_s)
        if self.steps < 1 or self.speed <= 0 or min(*durations, *scripted) < 0:
            raise ValueError(f"invalid timeline: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """Build from a (possibly partial) dict; unknown keys raise ValueError."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown timeline fields: {sorted(unknown)}")
        return cls(**data)

    @property
    def run_start(self) -> float:
        return self.validating_s + self.queued_s

    def step_end(self, step: int) -> float:
        return self.run_start + step * self.step_s

    def checkpoint_steps(self) -> list[int]:
        count = max(0, min(self.checkpoints, self.steps))
        return sorted({round(self.steps * k / count) for k in range(1, count + 1)}) if count else []


@dataclass(frozen=True)
class Event:
    at: float
    level: str
    message: str
    type: str = "message"
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Checkpoint:
    at: float
    step: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Progress:
    """What a job looks like at one moment. Times are wall-clock seconds since the epoch."""

    status: str
    step: int
    events: list[Event] = field(default_factory=list)  # oldest first
    checkpoints: list[Checkpoint] = field(default_factory=list)  # oldest first
    finished_at: float | None = None
    estimated_finish: float | None = None
    error: dict[str, Any] | None = None
    started_at: float | None = None  # when it began running
    finishing: float | None = None  # while finishing after the last step: the share of that time gone by


def step_metrics(step: int, total: int) -> dict[str, float]:
    """A smooth, decreasing loss curve: the same numbers for the same step every time."""
    decay = math.exp(-3.0 * step / total)
    return {"train_loss": round(0.35 + 1.9 * decay, 4),
            "train_mean_token_accuracy": round(0.95 - 0.55 * decay, 4)}


def progress(timeline: Timeline, created_at: float, now: float, *, pauses: Pauses = (),
             cancelled_at: float | None = None) -> Progress:
    """Replay the timeline from `created_at` to `now`, frozen while paused and stopped at a cancel."""
    end = min(now, cancelled_at) if cancelled_at is not None else now
    active = _active_seconds(created_at, end, pauses) * timeline.speed
    script = [e for e in _script(timeline) if e[0] <= active]
    events = [_timed(e, created_at, pauses, timeline.speed) for e in script]
    events += _interruptions(pauses, cancelled_at, now)
    events.sort(key=lambda e: e.at)
    checkpoints = [
        Checkpoint(_wall(timeline.step_end(s), created_at, pauses, timeline.speed), s,
                   {"step": s, **step_metrics(s, timeline.steps)})
        for s in timeline.checkpoint_steps()
        if timeline.step_end(s) <= active and s <= _last_step(timeline)
    ]
    step = max((e.data["step"] for e in events if e.type == "metrics"), default=0)
    ending = _ending(timeline)
    ended = ending is not None and ending[0] <= active
    finished_at = _wall(ending[0], created_at, pauses, timeline.speed) if ended else None
    started = active >= timeline.run_start
    base = {"step": step, "events": events, "checkpoints": checkpoints,
            "started_at": _wall(timeline.run_start, created_at, pauses, timeline.speed) if started else None}
    if finished_at is not None:
        return Progress(status=ending[1], finished_at=finished_at, error=ending[2], **base)
    if cancelled_at is not None and cancelled_at <= now:
        return Progress(status="cancelled", finished_at=cancelled_at, **base)
    if pauses and pauses[-1][1] is None:
        return Progress(status="paused", **base)
    if active < timeline.validating_s:
        return Progress(status="validating_files", **base)
    if active < timeline.run_start:
        return Progress(status="queued", **base)
    done = timeline.step_end(timeline.steps)
    estimated = _wall(done + timeline.finishing_s, created_at, pauses, timeline.speed)
    finishing = (active - done) / timeline.finishing_s if active >= done and timeline.finishing_s else None
    return Progress(status="running", estimated_finish=estimated, finishing=finishing, **base)


def _last_step(timeline: Timeline) -> int:
    """The last step the job reports before it fails, stalls or finishes."""
    last = timeline.steps
    for ends_at in (timeline.fail_at_step, timeline.restart_at_step):
        if ends_at is not None:
            last = min(last, ends_at - 1)
    if timeline.stall_at_step is not None:
        last = min(last, timeline.stall_at_step)
    return max(last, 0)


RESTARTED = {"code": "job_restarted", "param": None,
             "message": "The job was restarted under a new id after an infrastructure failure."}


def _ending(timeline: Timeline) -> tuple[float, str, dict | None] | None:
    """(nominal offset, terminal status, error) of how the script ends, or None if it never does."""
    stall = timeline.stall_at_step if timeline.stall_at_step is not None else math.inf
    failures = [(step, {"code": timeline.fail_code, "message": timeline.fail_message, "param": None})
                for step in (timeline.fail_at_step,) if step is not None]
    failures += [(step, RESTARTED) for step in (timeline.restart_at_step,) if step is not None]
    failures = [(step, error) for step, error in failures if step <= timeline.steps and step <= stall]
    if failures:
        step, error = min(failures, key=lambda failure: failure[0])
        return timeline.step_end(step), "failed", error
    if stall <= timeline.steps:
        return None
    return timeline.step_end(timeline.steps) + timeline.finishing_s, "succeeded", None


def _script(timeline: Timeline) -> list[tuple[float, str, str, str, dict | None]]:
    """Every event the script can emit, as (nominal offset, level, message, type, data)."""
    script = [
        (0.0, "info", "Validating training file", "message", None),
        (timeline.validating_s, "info", "Files validated, moving job to queued state", "message", None),
        (timeline.run_start, "info", "Fine-tuning job started", "message", None),
    ]
    checkpoint_steps = set(timeline.checkpoint_steps())
    for step in range(1, _last_step(timeline) + 1):
        at, metrics = timeline.step_end(step), step_metrics(step, timeline.steps)
        data = {"step": step, "total_steps": timeline.steps, **metrics}
        message = f"Step {step}/{timeline.steps}: training loss={metrics['train_loss']:.3f}"
        script.append((at, "info", message, "metrics", data))
        if step in checkpoint_steps:
            script.append((at, "info", f"Checkpoint created at step {step}", "message", None))
    ending = _ending(timeline)
    if ending and ending[1] == "failed":
        script.append((ending[0], "error", f"Fine-tuning job failed: {ending[2]['message']}", "message",
                       None))
    elif ending:
        script.append((ending[0], "info", "New fine-tuned model created", "message", None))
        script.append((ending[0], "info", "The job has successfully completed", "message", None))
    return script


def _timed(entry: tuple, created_at: float, pauses: Pauses, speed: float) -> Event:
    offset, level, message, kind, data = entry
    return Event(_wall(offset, created_at, pauses, speed), level, message, kind, data)


def _interruptions(pauses: Pauses, cancelled_at: float | None, now: float) -> list[Event]:
    events = []
    for start, end in pauses:
        events.append(Event(start, "info", "Fine-tuning job paused"))
        if end is not None and (cancelled_at is None or end < cancelled_at):
            events.append(Event(end, "info", "Fine-tuning job resumed"))
    if cancelled_at is not None and cancelled_at <= now:
        events.append(Event(cancelled_at, "info", "Fine-tuning job cancelled"))
    return events


def _active_seconds(created_at: float, end: float, pauses: Pauses) -> float:
    paused = sum(min(stop if stop is not None else end, end) - start for start, stop in pauses if start < end)
    return max(0.0, end - created_at - paused)


def _wall(offset: float, created_at: float, pauses: Pauses, speed: float) -> float:
    """The wall-clock moment a nominal offset is reached, pushed back by every pause before it."""
    at = created_at + offset / speed
    for start, stop in pauses:
        if start < at:
            at += (stop if stop is not None else math.inf) - start
    return at


def result_csv(state: Progress) -> bytes:
    """The step-metrics CSV a finished job links in `result_files`."""
    rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    rows += [f"{e.data['step']},{e.data['train_loss']},{e.data['train_mean_token_accuracy']},,"
             for e in state.events if e.type == "metrics" and e.data]
    return ("\n".join(rows) + "\n").encode()
