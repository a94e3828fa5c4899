"""What the emulator keeps for the Together API: files uploaded in three requests, and fine-tune jobs.

An upload is a record created by `POST /v1/files` (answered with a presigned PUT URL), its bytes from the
PUT, then processing asked for by `/preprocess`; a second upload of content already received (same
sha256 checksum) is refused with 409 and the file id. Jobs follow a `Timeline` like OpenAI jobs; a job
whose timeline restarts (`restart_at_step`) ends in error and a successor with a new id, the same request
and the timeline without the restart appears at that moment (`successor` / `restarted_from` link them).
The store hangs off an `EmulatorState` (`together_store(state)`), runs every method under the state's
lock and is saved as the `together` section of state.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
import uuid
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from emulator import training_file
from emulator.chat import tuned_on
from emulator.timeline import RESTARTED, Progress, Timeline, progress
from emulator.wire import ApiError, model_not_found, not_found
from providers.imitation import BaseImitation

if TYPE_CHECKING:
    from emulator.state import EmulatorState, Imitation

ACCOUNT = "loraflow-emulator"


@dataclass
class TogetherFile:
    id: str
    filename: str
    purpose: str
    file_type: str
    checksum: str
    created_at: float
    token: str  # what the presigned URL carries instead of the API key
    bytes: int = 0
    lines: int = 0
    uploaded_at: float | None = None
    preprocessed_at: float | None = None
    problem: str | None = None


@dataclass
class TogetherJob:
    id: str
    created_at: float
    request: dict[str, Any]  # the create body as sent: what the job echoes and trains on
    timeline: Timeline
    output_name: str
    token_count: int
    cancelled_at: float | None = None
    restarted_from: str | None = None
    successor: str | None = None

    @property
    def model(self) -> str:
        return self.request["model"]

    def progress(self, now: float) -> Progress:
        return progress(self.timeline, self.created_at, now, cancelled_at=self.cancelled_at)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timeline": self.timeline.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TogetherJob:
        return cls(**{**data, "timeline": Timeline.from_dict(data["timeline"])})


def together_store(state: EmulatorState) -> TogetherStore:
    """The Together store of `state`, made (and given its saved section) on first use."""
    return state.store("together", TogetherStore)


class TogetherStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._files: dict[str, TogetherFile] = {}
        self._jobs: dict[str, TogetherJob] = {}

    # -- files -----------------------------------------------------------------------------------

    def start_upload(self, filename: str, purpose: str, file_type: str, checksum: str) -> TogetherFile:
        """The record a presigned PUT will fill: a new one, or the pending one for the same content."""
        with self.state.lock:
            for record in self._files.values():
                if record.checksum == checksum and record.purpose == purpose:
                    if record.uploaded_at is not None:
                        raise ApiError(409, f"File {record.id} with this content was already uploaded.",
                                       code="file_exists", headers={"x-should-retry": "false"},
                                       extra={"file_id": record.id})
                    return record
            record = TogetherFile(f"file-{uuid.uuid4()}", filename, purpose, file_type, checksum,
                                  self.state.now(), secrets.token_hex(8))
            self._files[record.id] = record
            self.state.count("files_created")
            self.state.save()
            return record

    def receive(self, file_id: str, token: str, content: bytes) -> None:
        with self.state.lock:
            record = self._files.get(file_id)
            if record is None or not secrets.compare_digest(record.token, token):
                raise ApiError(403, "The upload URL is not valid for this file.",
                               code="SignatureDoesNotMatch")
            self.state.storage.write_blob(record.id, content)
            record.bytes, record.uploaded_at = len(content), self.state.now()
            record.problem = training_file.problem(content) if record.purpose == "fine-tune" else None
            record.lines = sum(1 for line in content.splitlines() if line.strip())
            self.state.save()

    def preprocess(self, file_id: str) -> TogetherFile:
        with self.state.lock:
            record = self.file(file_id)
            if record.uploaded_at is None:
                raise ApiError(400, f"File {file_id} has no content yet: PUT it to the upload URL first.",
                               param="file_id")
            if record.preprocessed_at is None:
                record.preprocessed_at = self.state.now()
                self.state.save()
            return record

    def file(self, file_id: str) -> TogetherFile:
        with self.state.lock:
            if file_id not in self._files:
                raise not_found("file", file_id, param="id")
            return self._files[file_id]

    def list_files(self) -> list[TogetherFile]:
        with self.state.lock:
            return list(reversed(self._files.values()))

    def file_status(self, record: TogetherFile) -> str:
        if record.preprocessed_at is None:
            return "PENDING"
        if self.state.now() < record.preprocessed_at + self.state.file_processing_s:
            return "RUNNING"
        return "INVALID_FORMAT" if record.problem else "COMPLETED"

    def content(self, file_id: str) -> bytes:
        with self.state.lock:
            if self.file(file_id).uploaded_at is None:
                raise ApiError(400, f"File {file_id} has no content yet.", param="id")
            return self.state.storage.read_blob(file_id)

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, request: dict[str, Any]) -> TogetherJob:
        with self.state.lock:
            train = self._usable_file(request["training_file"], "training_file")
            if request.get("validation_file"):
                self._usable_file(request["validation_file"], "validation_file")
            content = self.state.storage.read_blob(train.id)
            tokens = training_file.content_tokens(content) * request["n_epochs"]
            job_id = f"ft-{uuid.uuid4()}"
            short = request["model"].rsplit("/", 1)[-1]
            name = "-".join(part for part in (short, request.get("suffix"), job_id[3:9]) if part)
            timeline = replace(self.state.timeline, checkpoints=request.get("n_checkpoints") or 1)
            job = TogetherJob(job_id, self.state.now(), request, timeline, f"{ACCOUNT}/{name}", tokens)
            self._jobs[job.id] = job
            self.state.count("jobs_created")
            self.state.save()
            return job

    def job(self, job_id: str) -> TogetherJob:
        with self.state.lock:
            self._settle()
            if job_id not in self._jobs:
                raise not_found("fine-tune job", job_id, param="id")
            return self._jobs[job_id]

    def list_jobs(self) -> list[TogetherJob]:
        """Newest first."""
        with self.state.lock:
            self._settle()
            return sorted(self._jobs.values(), key=lambda job: job.created_at, reverse=True)

    def cancel(self, job_id: str) -> TogetherJob:
        with self.state.lock:
            job, now = self.job(job_id), self.state.now()
            status = job.progress(now).status
            if status in ("succeeded", "failed", "cancelled"):
                raise ApiError(400, f"Fine-tune job {job_id} has already ended and cannot be cancelled.")
            job.cancelled_at = now
            self.state.count("jobs_cancelled")
            self.state.save()
            return job

    def trained_file_for(self, model: str) -> str | None:
        """The training file of the completed job whose output (or adapter) name is `model`."""
        with self.state.lock:
            for job in self._jobs.values():
                names = (job.output_name, f"{job.output_name}-adapter")
                if model in names and job.progress(self.state.now()).status == "succeeded":
                    return job.request["training_file"]
        return None

    def imitation(self, model: str) -> Imitation:
        """The stand-in that answers for `model` on the Together routes: tuned when a completed job of
        this store produced it, 404 for any other name under the emulator's account, else a base model."""
        return self.state.imitation("together", model, lambda: self._imitation(model))

    def _imitation(self, model: str) -> Imitation:
        file_id = self.trained_file_for(model)
        if file_id is not None:
            return tuned_on(self.state.storage.read_blob(file_id))
        if model.startswith(f"{ACCOUNT}/"):
            raise model_not_found(model)
        return BaseImitation()

    def adapter_archive(self, job_id: str) -> bytes:
        """A small, deterministic .tar.gz standing in for the adapter weights of a completed job."""
        job = self.job(job_id)
        state = job.progress(self.state.now())
        if state.status != "succeeded":
            raise ApiError(400, f"Fine-tune job {job_id} has not completed; nothing to download.",
                           param="ft_id")
        training_type = job.request.get("training_type") or {}
        config = {"base_model_name_or_path": job.model, "peft_type": "LORA", "r": training_type.get("lora_r"),
                  "lora_alpha": training_type.get("lora_alpha"),
                  "lora_dropout": training_type.get("lora_dropout"),
                  "target_modules": training_type.get("lora_trainable_modules")}
        weights = hashlib.sha256(job.id.encode()).digest() * 64
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
            for name, data in (("adapter_config.json", json.dumps(config, indent=1).encode()),
                               ("adapter_model.safetensors", weights)):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(state.finished_at or job.created_at)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    # -- internals -------------------------------------------------------------------------------

    def _usable_file(self, file_id: str, param: str) -> TogetherFile:
        record = self._files.get(file_id)
        if record is None:
            raise ApiError(400, f"Invalid file ID: {file_id}", param=param, code="invalid_file")
        status = self.file_status(record)
        if status == "INVALID_FORMAT":
            raise ApiError(400, f"File {file_id} is not valid training data: {record.problem}", param=param,
                           code="invalid_training_file")
        if status != "COMPLETED":
            raise ApiError(400, f"File {file_id} has not been validated yet ({status}).", param=param,
                           code="file_not_ready")
        return record

    def _settle(self) -> None:
        """Give every job whose restart moment has passed its successor (created at that moment)."""
        now = self.state.now()
        for job in list(self._jobs.values()):
            if job.timeline.restart_at_step is None or job.successor is not None:
                continue
            ended = job.progress(now)
            if ended.error != RESTARTED:
                continue
            successor = TogetherJob(
                f"ft-{uuid.UUID(hashlib.sha256(job.id.encode()).hexdigest()[:32])}", ended.finished_at,
                job.request, replace(job.timeline, restart_at_step=None), job.output_name, job.token_count,
                restarted_from=job.id)
            job.successor = successor.id
            self._jobs[successor.id] = successor
            self.state.count("jobs_restarted")
            self.state.save()

    def to_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self._files.values()],
                "jobs": [j.to_dict() for j in self._jobs.values()]}

    def load(self, section: dict[str, Any] | None) -> None:
        section = section or {"files": [], "jobs": []}
        self._files = {f["id"]: TogetherFile(**f) for f in section["files"]}
        self._jobs = {j["id"]: TogetherJob.from_dict(j) for j in section["jobs"]}

