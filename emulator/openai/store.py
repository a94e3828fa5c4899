"""What the emulator keeps for the OpenAI API: uploaded files and fine-tuning jobs (records.py).

The store hangs off an `EmulatorState` (`openai_store(state)`), runs every method under the state's lock
and is saved as the `openai` section of state.json. A job's status, events, checkpoints and result file
are derived from its timeline on demand; a succeeded job's model (or one of its checkpoints) answers chat
completions like its training data.
"""

from __future__ import annotations

import uuid
from typing import Any

from emulator import training_file
from emulator.chat import tuned_on
from emulator.openai.shapes import JobRequest, hyperparameters
from emulator.records import FileRecord, JobRecord
from emulator.state import EmulatorState, Imitation
from emulator.timeline import result_csv
from emulator.wire import ApiError, model_not_found, not_found
from providers.imitation import BaseImitation

_TERMINAL = ("succeeded", "failed", "cancelled")


def openai_store(state: EmulatorState) -> OpenAIStore:
    """The OpenAI store of `state`, made (and given its saved section) on first use."""
    return state.store("openai", OpenAIStore)


class OpenAIStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._files: dict[str, FileRecord] = {}
        self._jobs: dict[str, JobRecord] = {}

    # -- files -----------------------------------------------------------------------------------

    def add_file(self, filename: str, purpose: str, content: bytes) -> FileRecord:
        problem = training_file.problem(content) if purpose == "fine-tune" else None
        record = FileRecord(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, len(content),
                            self.state.now(), problem)
        with self.state.lock:
            self._files[record.id] = record
            self.state.storage.write_blob(record.id, content)
            self.state.count("files_created")
            self.state.save()
        return record

    def file(self, file_id: str) -> FileRecord:
        with self.state.lock:
            if file_id in self._files:
                return self._files[file_id]
            for job in self._jobs.values():
                state = job.progress(self.state.now())
                if job.result_file_id == file_id and state.status == "succeeded":
                    return FileRecord(file_id, "step_metrics.csv", "fine-tune-results",
                                      len(result_csv(state)), state.finished_at or job.created_at)
        raise not_found("File", file_id, param="file_id")

    def file_status(self, record: FileRecord) -> str:
        if self.state.now() < record.created_at + self.state.file_processing_s:
            return "uploaded"
        return "error" if record.problem else "processed"

    def file_content(self, file_id: str) -> bytes:
        record = self.file(file_id)
        with self.state.lock:
            if record.purpose == "fine-tune-results":
                job = next(j for j in self._jobs.values() if j.result_file_id == file_id)
                return result_csv(job.progress(self.state.now()))
            return self.state.storage.read_blob(file_id)

    def list_files(self, purpose: str | None = None) -> list[FileRecord]:
        """Newest first."""
        with self.state.lock:
            return [f for f in reversed(self._files.values()) if purpose in (None, f.purpose)]

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, request: JobRequest) -> JobRecord:
        with self.state.lock:
            training = self._usable_file(request.training_file, "training_file")
            if request.validation_file is not None:
                self._usable_file(request.validation_file, "validation_file")
            job_hex = uuid.uuid4().hex[:24]
            method = request.method_dict()
            epochs = hyperparameters(method, resolved=True)["n_epochs"]
            tokens = training_file.content_tokens(self.state.storage.read_blob(training.id))
            record = JobRecord(
                id=f"ftjob-{job_hex}", created_at=self.state.now(), model=request.model,
                training_file=training.id, method=method, timeline=self.state.timeline,
                seed=request.seed if request.seed is not None else int(job_hex[:7], 16),
                trained_tokens=tokens * int(epochs), validation_file=request.validation_file,
                suffix=request.suffix, metadata=request.metadata, integrations=request.integrations)
            self._jobs[record.id] = record
            self.state.count("jobs_created")
            self.state.save()
        return record

    def job(self, job_id: str) -> JobRecord:
        with self.state.lock:
            if job_id not in self._jobs:
                raise not_found("fine-tuning job", job_id, param="fine_tuning_job_id")
            return self._jobs[job_id]

    def list_jobs(self, *, after: str | None, limit: int, metadata: dict[str, str] | None,
                  null_metadata: bool = False) -> tuple[list[JobRecord], bool]:
        """Newest first. `after` is a position in the unfiltered list, so a filtered page can follow
        any id."""
        with self.state.lock:
            jobs = list(reversed(self._jobs.values()))
        if after is not None:
            ids = [job.id for job in jobs]
            if after not in ids:
                raise ApiError(400, f"Invalid 'after': no fine-tuning job {after!r}.", param="after")
            jobs = jobs[ids.index(after) + 1:]
        if null_metadata:
            jobs = [job for job in jobs if not job.metadata]
        elif metadata:
            jobs = [job for job in jobs
                    if all((job.metadata or {}).get(k) == v for k, v in metadata.items())]
        return jobs[:limit], len(jobs) > limit

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job that has not ended. An ended job gets a 400 (how the service answers this was not
        verified here; adapters should treat "already ended" as done, not as a failure)."""
        with self.state.lock:
            job, now = self.job(job_id), self.state.now()
            status = job.progress(now).status
            if status in _TERMINAL:
                raise ApiError(400, f"Job {job_id} has already {status} and cannot be cancelled.")
            if job.pauses and job.pauses[-1][1] is None:
                job.pauses[-1] = (job.pauses[-1][0], now)
            job.cancelled_at = now
            self.state.count("jobs_cancelled")
            self.state.save()
            return job

    def pause(self, job_id: str) -> JobRecord:
        with self.state.lock:
            job, now = self.job(job_id), self.state.now()
            status = job.progress(now).status
            if status != "running":
                raise ApiError(400, f"Only a running job can be paused; job {job_id} is {status}.")
            job.pauses.append((now, None))
            self.state.save()
            return job

    def resume(self, job_id: str) -> JobRecord:
        with self.state.lock:
            job, now = self.job(job_id), self.state.now()
            status = job.progress(now).status
            if status != "paused":
                raise ApiError(400, f"Only a paused job can be resumed; job {job_id} is {status}.")
            job.pauses[-1] = (job.pauses[-1][0], now)
            self.state.save()
            return job

    # -- inference -------------------------------------------------------------------------------

    def imitation(self, model: str) -> Imitation:
        """The stand-in that answers for `model` on the OpenAI routes: tuned when a job of this store
        produced it (or one of its checkpoints), 404 for any other `ft:` id, else a base model."""
        return self.state.imitation("openai", model, lambda: self._imitation(model))

    def _imitation(self, model: str) -> Imitation:
        with self.state.lock:
            job = self._job_for_model(model)
            if job is not None:
                return tuned_on(self.state.storage.read_blob(job.training_file))
        if model.startswith("ft:"):
            raise model_not_found(model)
        return BaseImitation()

    def _job_for_model(self, model: str) -> JobRecord | None:
        now = self.state.now()
        for job in self._jobs.values():
            if model.startswith(job.fine_tuned_model) and job.progress(now).status == "succeeded":
                checkpoint = model.removeprefix(job.fine_tuned_model)
                if checkpoint == "" or checkpoint.startswith(":ckpt-step-"):
                    return job
        return None

    def models(self) -> list[tuple[str, float]]:
        """(id, created) of the models this store can answer for by name: each job's base model and the
        fine-tuned model of each job that succeeded."""
        now, found = self.state.now(), {}
        with self.state.lock:
            for job in self._jobs.values():
                found.setdefault(job.model, job.created_at)
                if job.progress(now).status == "succeeded":
                    found[job.fine_tuned_model] = job.created_at
        return sorted(found.items())

    # -- internals -------------------------------------------------------------------------------

    def _usable_file(self, file_id: str, param: str) -> FileRecord:
        record = self._files.get(file_id)
        if record is None:
            raise ApiError(400, f"Invalid file ID: {file_id}", param=param, code="invalid_file")
        status = self.file_status(record)
        if record.purpose != "fine-tune":
            raise ApiError(400, f"File {file_id} has purpose {record.purpose!r}, not 'fine-tune'.",
                           param=param)
        if status == "error":
            raise ApiError(400, f"File {file_id} is not valid training data: {record.problem}",
                           param=param, code="invalid_training_file")
        if status != "processed":
            raise ApiError(400, f"File {file_id} is still being processed; try again shortly.",
                           param=param, code="file_not_ready")
        return record

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self._files.values()],
                "jobs": [j.to_dict() for j in self._jobs.values()]}

    def load(self, section: dict[str, Any] | None) -> None:
        section = section or {"files": [], "jobs": []}
        self._files = {f["id"]: FileRecord.from_dict(f) for f in section["files"]}
        self._jobs = {j["id"]: JobRecord.from_dict(j) for j in section["jobs"]}
