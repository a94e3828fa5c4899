"""The emulator's store: OpenAI files and jobs, counters, the default timeline, the fault rules and the
serving knobs; Together's files and jobs live in `together` (together_store.py) under the same lock.

One `EmulatorState` is shared by the HTTP routes (in uvicorn's thread) and the test that started the
server (in its own thread), so every method takes the lock. With a `state_dir`, file bytes live in
`<state_dir>/files/<id>` and everything else in `<state_dir>/state.json`, rewritten atomically after
each mutation and read back at start; fault rules and model caches are not persisted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator import training_file
from emulator.faults import Faults
from emulator.records import FileRecord, JobRecord
from emulator.serving import Serving, ServingSettings
from emulator.openai.shapes import ApiError, JobRequest, hyperparameters, not_found
from emulator.storage import Storage
from emulator.timeline import Timeline, result_csv
from emulator.together.store import ACCOUNT as TOGETHER_ACCOUNT
from emulator.together.store import TogetherStore
from providers.imitation import BaseImitation, TunedImitation

_TERMINAL = ("succeeded", "failed", "cancelled")


class EmulatorState:
    """Everything the emulator knows. `counters` and `faults` are what tests read and script."""

    def __init__(self, state_dir: str | Path | None = None, *, timeline: Timeline | None = None,
                 file_processing_s: float = 0.0, latency_s: float = 0.0, requests_per_minute: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage = Storage(state_dir)
        self.file_processing_s = file_processing_s
        self.faults = Faults()
        self.serving = Serving(ServingSettings(latency_s, requests_per_minute))
        self._clock = clock
        self.lock = threading.RLock()
        self._timeline = timeline or Timeline()
        self._files: dict[str, FileRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._counters: dict[str, Any] = _zero_counters()
        self._imitations: dict[str, TunedImitation] = {}
        self.together = TogetherStore(self)
        self._load(keep_timeline=timeline is not None)

    def now(self) -> float:
        return self._clock()

    # -- timeline and counters -------------------------------------------------------------------

    @property
    def timeline(self) -> Timeline:
        """The timeline the next created job follows; jobs keep the one they were created with."""
        return self._timeline

    def set_timeline(self, timeline: Timeline) -> Timeline:
        """Replace the default timeline for new jobs; returns the previous one."""
        with self.lock:
            previous, self._timeline = self._timeline, timeline
            self.save()
        return previous

    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot: {"requests": {"POST /v1/files": n, ...}, "files_created": n, "jobs_created": n,
        "jobs_cancelled": n, "jobs_restarted": n, "completions": n, "rate_limited": n}, both APIs together
        (jobs_created counts create requests only; a restart counts in jobs_restarted)."""
        with self.lock:
            return json.loads(json.dumps(self._counters))

    def count_request(self, route: str) -> None:
        with self.lock:
            self._counters["requests"][route] = self._counters["requests"].get(route, 0) + 1
            self.save()

    def reset_counters(self) -> None:
        with self.lock:
            self._counters = _zero_counters()
            self.save()

    def count(self, name: str) -> None:
        """Add one to a counter; the caller holds the lock."""
        self._counters[name] += 1

    # -- serving ---------------------------------------------------------------------------------

    def set_serving(self, *, latency_s: float = 0.0, requests_per_minute: int | None = None) -> ServingSettings:
        """Replace how chat completions are served (both settings at once); returns the previous settings."""
        return self.serving.configure(ServingSettings(latency_s, requests_per_minute))

    @property
    def latency_s(self) -> float:
        return self.serving.settings.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self.set_serving(latency_s=value, requests_per_minute=self.requests_per_minute)

    @property
    def requests_per_minute(self) -> int | None:
        return self.serving.settings.requests_per_minute

    @requests_per_minute.setter
    def requests_per_minute(self, value: int | None) -> None:
        self.set_serving(latency_s=self.latency_s, requests_per_minute=value)

    async def admit_completion(self) -> None:
        """Apply the serving limit and latency to one chat completion; ApiError 429 when over the limit."""
        try:
            await self.serving.serve()
        except ApiError:
            with self.lock:
                self.count("rate_limited")
                self.save()
            raise

    # -- files -----------------------------------------------------------------------------------

    def add_file(self, filename: str, purpose: str, content: bytes) -> FileRecord:
        problem = training_file.problem(content) if purpose == "fine-tune" else None
        record = FileRecord(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, len(content), self.now(), problem)
        with self.lock:
            self._files[record.id] = record
            self.storage.write_blob(record.id, content)
            self.count("files_created")
            self.save()
        return record

    def file(self, file_id: str) -> FileRecord:
        with self.lock:
            if file_id in self._files:
                return self._files[file_id]
            for job in self._jobs.values():
                state = job.progress(self.now())
                if job.result_file_id == file_id and state.status == "succeeded":
                    return FileRecord(file_id, "step_metrics.csv", "fine-tune-results",
                                      len(result_csv(state)), state.finished_at or job.created_at)
        raise not_found("File", file_id, param="file_id")

    def file_status(self, record: FileRecord) -> str:
        if self.now() < record.created_at + self.file_processing_s:
            return "uploaded"
        return "error" if record.problem else "processed"

    def file_content(self, file_id: str) -> bytes:
        record = self.file(file_id)
        with self.lock:
            if record.purpose == "fine-tune-results":
                job = next(j for j in self._jobs.values() if j.result_file_id == file_id)
                return result_csv(job.progress(self.now()))
            return self.storage.read_blob(file_id)

    def list_files(self, purpose: str | None = None) -> list[FileRecord]:
        """Newest first."""
        with self.lock:
            return [f for f in reversed(self._files.values()) if purpose in (None, f.purpose)]

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, request: JobRequest) -> JobRecord:
        with self.lock:
            training = self._usable_file(request.training_file, "training_file")
            if request.validation_file is not None:
                self._usable_file(request.validation_file, "validation_file")
            job_hex = uuid.uuid4().hex[:24]
            method = request.method_dict()
            epochs = hyperparameters(method, resolved=True)["n_epochs"]
            record = JobRecord(
                id=f"ftjob-{job_hex}", created_at=self.now(), model=request.model,
                training_file=training.id, method=method, timeline=self._timeline,
                seed=request.seed if request.seed is not None else int(job_hex[:7], 16),
                trained_tokens=training_file.content_tokens(self.storage.read_blob(training.id)) * int(epochs),
                validation_file=request.validation_file, suffix=request.suffix, metadata=request.metadata,
                integrations=request.integrations)
            self._jobs[record.id] = record
            self.count("jobs_created")
            self.save()
        return record

    def job(self, job_id: str) -> JobRecord:
        with self.lock:
            if job_id not in self._jobs:
                raise not_found("fine-tuning job", job_id, param="fine_tuning_job_id")
            return self._jobs[job_id]

    def list_jobs(self, *, after: str | None, limit: int, metadata: dict[str, str] | None,
                  null_metadata: bool = False) -> tuple[list[JobRecord], bool]:
        """Newest first. `after` is a position in the unfiltered list, so a filtered page can follow any id."""
        with self.lock:
            jobs = list(reversed(self._jobs.values()))
        if after is not None:
            ids = [job.id for job in jobs]
            if after not in ids:
                raise ApiError(400, f"Invalid 'after': no fine-tuning job {after!r}.", param="after")
            jobs = jobs[ids.index(after) + 1:]
        if null_metadata:
            jobs = [job for job in jobs if not job.metadata]
        elif metadata:
            jobs = [job for job in jobs if all((job.metadata or {}).get(k) == v for k, v in metadata.items())]
        return jobs[:limit], len(jobs) > limit

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job that has not ended. An ended job gets a 400 (how the service answers this was not
        verified here; adapters should treat "already ended" as done, not as a failure)."""
        with self.lock:
            job, now = self.job(job_id), self.now()
            status = job.progress(now).status
            if status in _TERMINAL:
                raise ApiError(400, f"Job {job_id} has already {status} and cannot be cancelled.")
            if job.pauses and job.pauses[-1][1] is None:
                job.pauses[-1] = (job.pauses[-1][0], now)
            job.cancelled_at = now
            self.count("jobs_cancelled")
            self.save()
            return job

    def pause(self, job_id: str) -> JobRecord:
        with self.lock:
            job, now = self.job(job_id), self.now()
            status = job.progress(now).status
            if status != "running":
                raise ApiError(400, f"Only a running job can be paused; job {job_id} is {status}.")
            job.pauses.append((now, None))
            self.save()
            return job

    def resume(self, job_id: str) -> JobRecord:
        with self.lock:
            job, now = self.job(job_id), self.now()
            status = job.progress(now).status
            if status != "paused":
                raise ApiError(400, f"Only a paused job can be resumed; job {job_id} is {status}.")
            job.pauses[-1] = (job.pauses[-1][0], now)
            self.save()
            return job

    # -- inference -------------------------------------------------------------------------------

    def imitation(self, model: str) -> BaseImitation | TunedImitation:
        """The stand-in that answers for `model`: tuned if this emulator produced it, else a base model."""
        with self.lock:
            if model in self._imitations:
                return self._imitations[model]
            job = self._job_for_model(model)
            file_id = job.training_file if job is not None else self.together.trained_file_for(model)
            if file_id is None:
                if model.startswith(("ft:", f"{TOGETHER_ACCOUNT}/")):
                    raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                                   param="model", code="model_not_found")
                return BaseImitation()
            lines = training_file.chat_lines(self.storage.read_blob(file_id))
            try:
                self._imitations[model] = TunedImitation.from_jsonl(lines)
            except ValueError:  # no example ends in an assistant turn: nothing to imitate
                return BaseImitation()
            return self._imitations[model]

    def count_completion(self) -> None:
        with self.lock:
            self.count("completions")
            self.save()

    def _job_for_model(self, model: str) -> JobRecord | None:
        for job in self._jobs.values():
            if model.startswith(job.fine_tuned_model) and job.progress(self.now()).status == "succeeded":
                checkpoint = model.removeprefix(job.fine_tuned_model)
                if checkpoint == "" or checkpoint.startswith(":ckpt-step-"):
                    return job
        return None

    # -- internals -------------------------------------------------------------------------------

    def _usable_file(self, file_id: str, param: str) -> FileRecord:
        record = self._files.get(file_id)
        if record is None:
            raise ApiError(400, f"Invalid file ID: {file_id}", param=param, code="invalid_file")
        status = self.file_status(record)
        if record.purpose != "fine-tune":
            raise ApiError(400, f"File {file_id} has purpose {record.purpose!r}, not 'fine-tune'.", param=param)
        if status == "error":
            raise ApiError(400, f"File {file_id} is not valid training data: {record.problem}", param=param,
                           code="invalid_training_file")
        if status != "processed":
            raise ApiError(400, f"File {file_id} is still being processed; try again shortly.", param=param,
                           code="file_not_ready")
        return record

    def save(self) -> None:
        """Write the snapshot (a no-op without a state_dir); the caller holds the lock."""
        self.storage.save({
            "timeline": self._timeline.to_dict(), "counters": self._counters,
            "files": [f.to_dict() for f in self._files.values()],
            "jobs": [j.to_dict() for j in self._jobs.values()], "together": self.together.to_dict(),
        })

    def _load(self, *, keep_timeline: bool) -> None:
        snapshot = self.storage.load()
        if snapshot is None:
            return
        if not keep_timeline:
            self._timeline = Timeline.from_dict(snapshot["timeline"])
        self._counters = {**_zero_counters(), **snapshot["counters"]}
        self._files = {f["id"]: FileRecord.from_dict(f) for f in snapshot["files"]}
        self._jobs = {j["id"]: JobRecord.from_dict(j) for j in snapshot["jobs"]}
        self.together.load(snapshot.get("together"))


def _zero_counters() -> dict[str, Any]:
    return {"requests": {}, "files_created": 0, "jobs_created": 0, "jobs_cancelled": 0, "completions": 0,
            "rate_limited": 0, "jobs_restarted": 0}
