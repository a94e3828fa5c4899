"""The Google wire shapes the emulator writes for Vertex AI and Cloud Storage (reference/providers.md §4).

Errors use Google's envelope (errors.py). A tuning job is rendered from its record (store.py) and the
timeline's `Progress`: the timeline's statuses become Vertex `JobState` names and `tuningJobState`
sub-states; int64 fields are strings, as the JSON API sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.timeline import Progress
    from emulator.vertex.store import GcsObject, VertexJob

_JOB_STATES = {"validating_files": "JOB_STATE_QUEUED", "queued": "JOB_STATE_PENDING",
               "running": "JOB_STATE_RUNNING", "paused": "JOB_STATE_PAUSED",
               "succeeded": "JOB_STATE_SUCCEEDED", "failed": "JOB_STATE_FAILED",
               "cancelled": "JOB_STATE_CANCELLED"}
_SUB_STATES = {"validating_files": "TUNING_JOB_STATE_PROCESSING_DATASET",
               "queued": "TUNING_JOB_STATE_WAITING_FOR_CAPACITY", "running": "TUNING_JOB_STATE_TUNING"}


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def chat_messages(example: dict[str, Any]) -> list[dict[str, Any]]:
    """A Gemini request or training line (systemInstruction + contents) as OpenAI-shape chat messages."""
    messages = []
    system = example.get("systemInstruction") or example.get("system_instruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text(system)})
    for turn in example.get("contents") or []:
        if isinstance(turn, dict):
            role = "assistant" if turn.get("role") == "model" else "user"
            messages.append({"role": role, "content": _text(turn)})
    return messages


def _text(content: dict[str, Any]) -> str:
    return "".join(str(part.get("text", "")) for part in content.get("parts") or [] if isinstance(part, dict))


def object_resource(record: GcsObject) -> dict[str, Any]:
    resource = {
        "kind": "storage#object", "id": f"{record.bucket}/{record.name}/{record.generation}",
        "name": record.name, "bucket": record.bucket, "generation": str(record.generation),
        "metageneration": "1",
        "contentType": record.content_type, "size": str(record.size), "md5Hash": record.md5,
        "timeCreated": timestamp(record.created_at), "updated": timestamp(record.created_at),
        "storageClass": "STANDARD",
    }
    if record.crc32c:
        resource["crc32c"] = record.crc32c
    return resource


def bucket_resource(bucket: str) -> dict[str, Any]:
    return {"kind": "storage#bucket", "id": bucket, "name": bucket, "location": "US",
            "storageClass": "STANDARD", "metageneration": "1"}


def job_object(job: VertexJob, state: Progress, now: float) -> dict[str, Any]:
    """The TuningJob resource as the v1beta1 JSON API renders it."""
    request = job.request
    status = _JOB_STATES[state.status]
    if job.cancelled_at is not None and now < job.cancelled_at and state.finished_at is None:
        status = "JOB_STATE_CANCELLING"
    body: dict[str, Any] = {
        "name": job.name, "baseModel": request.get("baseModel"), "state": status,
        "createTime": timestamp(job.created_at), "updateTime": timestamp(now),
        "supervisedTuningSpec": request["supervisedTuningSpec"],
        "tunedModelDisplayName": (request.get("tunedModelDisplayName")
                                  or f"{request.get('baseModel')}-{job.id}"),
    }
    for key in ("description", "labels"):
        if request.get(key):
            body[key] = request[key]
    if state.started_at is not None:
        body["startTime"] = timestamp(state.started_at)
    if state.finished_at is not None:
        body["endTime"] = timestamp(state.finished_at)
    if state.status in _SUB_STATES and status != "JOB_STATE_CANCELLING":
        finishing = state.status == "running" and state.finishing is not None
        body["tuningJobState"] = ("TUNING_JOB_STATE_POST_PROCESSING" if finishing
                                  else _SUB_STATES[state.status])
    if state.status != "validating_files":
        body["tuningDataStats"] = {"supervisedTuningDataStats": _data_stats(job)}
    if state.started_at is not None:
        epochs = _epochs(job)
        completed = min(epochs, epochs * state.step // job.timeline.steps)
        body["tuningJobMetadata"] = {"completedStepCount": str(state.step),
                                     "completedEpochCount": str(completed)}
    if state.status == "failed" and state.error:
        body["error"] = {"code": 3, "message": state.error["message"]}
    if state.status == "succeeded":
        body["tunedModel"] = _tuned_model(job, state)
    return body


def _tuned_model(job: VertexJob, state: Progress) -> dict[str, Any]:
    epochs, steps = _epochs(job), job.timeline.steps
    checkpoints = [{"checkpointId": str(n), "step": str(c.step),
                    "epoch": str(max(1, epochs * c.step // steps)), "endpoint": job.endpoint}
                   for n, c in enumerate(state.checkpoints, start=1)]
    return {"model": job.model, "endpoint": job.endpoint, "checkpoints": checkpoints}


def _epochs(job: VertexJob) -> int:
    hyper = job.request["supervisedTuningSpec"].get("hyperParameters") or {}
    return int(hyper.get("epochCount") or 1)


def _data_stats(job: VertexJob) -> dict[str, Any]:
    return {"tuningDatasetExampleCount": str(job.examples), "totalTuningCharacterCount": str(job.characters),
            "totalBillableCharacterCount": str(job.characters * _epochs(job)),
            "totalBillableTokenCount": str(job.tokens * _epochs(job)),
            "tuningStepCount": str(job.timeline.steps), "totalTruncatedExampleCount": "0"}


def generate_content(text: str, model: str, *, finish_reason: str, prompt_tokens: int,
                     output_tokens: int) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": finish_reason, "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                              "totalTokenCount": prompt_tokens + output_tokens},
            "modelVersion": model}
