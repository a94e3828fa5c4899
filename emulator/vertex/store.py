"""What the emulator keeps for Google Vertex AI: Cloud Storage objects and supervised tuning jobs.

Objects are content-addressed by bucket and name; an upload with `ifGenerationMatch=0` onto an existing
name is refused with 412, as GCS does. A tuning job trains on the object its `trainingDatasetUri` names,
follows a `Timeline` like the other APIs' jobs, and reports CANCELLING for `CANCELLING_S` after a cancel.
The store hangs off an `EmulatorState` (`vertex_store(state)`), runs every method under the state's
lock, and, with a state directory, keeps its records in `<state_dir>/vertex.json` (object bytes go
through the state's blob storage), so a restarted emulator finds them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.timeline import Progress, Timeline, progress
from emulator.training_file import first_problem
from emulator.vertex.errors import GoogleError

if TYPE_CHECKING:
    from emulator.state import EmulatorState

CANCELLING_S = 0.05


def vertex_store(state: EmulatorState) -> VertexStore:
    """The Vertex store of `state`, made (and given what vertex.json holds) on first use."""
    return state.store("vertex", VertexStore, file="vertex.json")


@dataclass
class GcsObject:
    bucket: str
    name: str
    generation: int
    size: int
    md5: str
    created_at: float
    content_type: str = "application/octet-stream"
    crc32c: str | None = None

    @property
    def blob(self) -> str:
        where = f"{self.bucket}/{self.name}/{self.generation}"
        return "gcs-" + hashlib.sha256(where.encode()).hexdigest()[:32]


@dataclass
class VertexJob:
    id: str
    project: str
    location: str
    created_at: float
    request: dict[str, Any]  # the create body as sent
    timeline: Timeline
    examples: int
    tokens: int
    characters: int
    cancelled_at: float | None = None
    pauses: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/tuningJobs/{self.id}"

    @property
    def endpoint(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/endpoints/{self.id}"

    @property
    def model(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/models/{self.id}@1"

    @property
    def training_uri(self) -> str:
        return self.request["supervisedTuningSpec"]["trainingDatasetUri"]

    def progress(self, now: float) -> Progress:
        return progress(self.timeline, self.created_at, now, pauses=self.pauses,
                        cancelled_at=self.cancelled_at)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timeline": self.timeline.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VertexJob:
        pauses = [(start, stop) for start, stop in data.get("pauses", [])]
        return cls(**{**data, "timeline": Timeline.from_dict(data["timeline"]), "pauses": pauses})


class VertexStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._objects: dict[tuple[str, str], GcsObject] = {}
        self._jobs: dict[str, VertexJob] = {}
        self._uploads: dict[str, dict[str, Any]] = {}  # open resumable sessions by upload id

    # -- Cloud Storage ---------------------------------------------------------------------------

    def put_object(self, bucket: str, name: str, content: bytes, *, content_type: str | None = None,
                   if_generation_match: int | None = None, crc32c: str | None = None) -> GcsObject:
        with self.state.lock:
            existing = self._objects.get((bucket, name))
            current = existing.generation if existing else 0
            if if_generation_match is not None and if_generation_match != current:
                raise GoogleError(412, "At least one of the pre-conditions you specified did not hold.",
                                  reason="conditionNotMet")
            record = GcsObject(bucket, name, current + 1, len(content),
                               base64.b64encode(hashlib.md5(content).digest()).decode(), self.state.now(),
                               content_type or "application/octet-stream", crc32c)
            self.state.storage.write_blob(record.blob, content)
            self._objects[(bucket, name)] = record
            self.state.count("files_created")
            self.state.save()
            return record

    def start_upload(self, bucket: str, name: str, *, content_type: str | None, crc32c: str | None,
                     if_generation_match: int | None) -> str:
        """Open a resumable upload session; its id."""
        upload_id = uuid.uuid4().hex
        with self.state.lock:
            self._uploads[upload_id] = {"bucket": bucket, "name": name, "content_type": content_type,
                                        "crc32c": crc32c, "if_generation_match": if_generation_match,
                                        "data": bytearray()}
        return upload_id

    def upload_chunk(self, upload_id: str, first: int | None, chunk: bytes, total: int | None
                     ) -> tuple[int, GcsObject | None]:
        """(bytes received so far, the object once all `total` bytes are in). A chunk starting past what
        arrived is refused; one overlapping it keeps only the new bytes, as a retried chunk does."""
        with self.state.lock:
            session = self._uploads.get(upload_id)
            if session is None:
                raise GoogleError(404, f"No such upload session {upload_id}.")
            data: bytearray = session["data"]
            if first is not None:
                if first > len(data):
                    raise GoogleError(400, f"Chunk starts at byte {first}, but only {len(data)} arrived.")
                data[first:] = chunk
            if total is None or len(data) < total:
                return len(data), None
            del self._uploads[upload_id]
        record = self.put_object(session["bucket"], session["name"], bytes(data[:total]),
                                 content_type=session["content_type"], crc32c=session["crc32c"],
                                 if_generation_match=session["if_generation_match"])
        return total, record

    def object(self, bucket: str, name: str) -> GcsObject:
        with self.state.lock:
            record = self._objects.get((bucket, name))
        if record is None:
            raise GoogleError(404, f"No such object: {bucket}/{name}")
        return record

    def content(self, bucket: str, name: str) -> bytes:
        record = self.object(bucket, name)
        with self.state.lock:
            return self.state.storage.read_blob(record.blob)

    def content_at(self, uri: str, field_name: str) -> bytes:
        """The bytes of a `gs://bucket/name` URI; 400 naming `field_name` when it does not resolve."""
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or not name:
            raise GoogleError(400, f"{field_name} must be a gs://bucket/object URI, got {uri!r}.")
        try:
            return self.content(bucket, name)
        except GoogleError as exc:
            raise GoogleError(400, f"{field_name}: the object {uri} does not exist.") from exc

    # -- tuning jobs -----------------------------------------------------------------------------

    def create_job(self, project: str, location: str, request: dict[str, Any]) -> VertexJob:
        spec = request["supervisedTuningSpec"]
        with self.state.lock:
            content = self.content_at(spec["trainingDatasetUri"], "supervisedTuningSpec.trainingDatasetUri")
            problem = vertex_lines_problem(content)
            if problem:
                raise GoogleError(400, f"The training dataset is not valid: {problem}")
            if spec.get("validationDatasetUri"):
                self.content_at(spec["validationDatasetUri"], "supervisedTuningSpec.validationDatasetUri")
            examples = [json.loads(line) for line in content.decode("utf-8").splitlines() if line.strip()]
            texts = [part.get("text", "") for example in examples for turn in example.get("contents", [])
                     for part in turn.get("parts", []) if isinstance(part, dict)]
            job = VertexJob(str(uuid.uuid4().int)[:19], project, location, self.state.now(), request,
                            self.state.timeline, len(examples), sum(len(t.split()) for t in texts),
                            sum(len(t) for t in texts))
            self._jobs[job.id] = job
            self.state.count("jobs_created")
            self.state.save()
            return job

    def job(self, name: str) -> VertexJob:
        with self.state.lock:
            job = self._jobs.get(name.rsplit("/", 1)[-1])
        if job is None or job.name != name:
            raise GoogleError(404, f"The TuningJob does not exist: {name}")
        return job

    def list_jobs(self, project: str, location: str) -> list[VertexJob]:
        """Newest first."""
        with self.state.lock:
            jobs = [j for j in self._jobs.values() if (j.project, j.location) == (project, location)]
        return sorted(jobs, key=lambda job: job.created_at, reverse=True)

    def cancel(self, name: str) -> VertexJob:
        with self.state.lock:
            job, now = self.job(name), self.state.now()
            status = job.progress(now).status
            if status in ("succeeded", "failed", "cancelled"):
                raise GoogleError(400, f"Cannot cancel TuningJob {name}: it is already in a terminal state.",
                                  status_name="FAILED_PRECONDITION")
            if job.cancelled_at is None:
                job.cancelled_at = now + CANCELLING_S  # CANCELLING until then
                self.state.count("jobs_cancelled")
                self.state.save()
            return job

    def job_for_endpoint(self, endpoint: str) -> VertexJob | None:
        """The succeeded job whose tuned model is served at `endpoint`."""
        with self.state.lock:
            job = self._jobs.get(endpoint.rsplit("/", 1)[-1])
        if job is None or job.endpoint != endpoint or job.progress(self.state.now()).status != "succeeded":
            return None
        return job

    # -- persistence -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [asdict(o) for o in self._objects.values()],
                "jobs": [j.to_dict() for j in self._jobs.values()]}

    def load(self, section: dict[str, Any] | None) -> None:
        section = section or {"objects": [], "jobs": []}
        self._objects = {(o["bucket"], o["name"]): GcsObject(**o) for o in section["objects"]}
        self._jobs = {j["id"]: VertexJob.from_dict(j) for j in section["jobs"]}


def vertex_lines_problem(content: bytes) -> str | None:
    """The first reason `content` is not Gemini tuning JSONL, as "line N: reason", or None."""
    return first_problem(content, _gemini_problem)


def _gemini_problem(example: Any) -> str | None:
    contents = example.get("contents") if isinstance(example, dict) else None
    if not isinstance(contents, list) or not contents:
        return "missing 'contents' list"
    if any(not isinstance(turn, dict) or turn.get("role") not in ("user", "model") for turn in contents):
        return "every turn needs role 'user' or 'model'"
    return None
