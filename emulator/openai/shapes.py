"""The OpenAI wire shapes the emulator reads and writes (reference/providers.md §1.2-1.4).

Requests are validated with pydantic models that forbid unknown keys, as the service does; responses
are plain dicts built from the store's records (records.py) and a job's `Progress`. Refusals are the
shared `ApiError` (emulator/wire.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emulator.wire import ApiError

if TYPE_CHECKING:
    from emulator.records import FileRecord, JobRecord
    from emulator.timeline import Progress

ORGANIZATION = "org-loraflow-emulator"
_RESOLVED_AUTO = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Auto = Literal["auto"]


class _Hyperparameters(_Strict):
    n_epochs: _Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: _Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: _Auto | Annotated[float, Field(gt=0)] = "auto"


class _DpoHyperparameters(_Hyperparameters):
    beta: _Auto | Annotated[float, Field(gt=0)] = "auto"


class _Supervised(_Strict):
    hyperparameters: _Hyperparameters = Field(default_factory=_Hyperparameters)


class _Dpo(_Strict):
    hyperparameters: _DpoHyperparameters = Field(default_factory=_DpoHyperparameters)


class _Method(_Strict):
    # reinforcement needs graders the emulator cannot run, so it is refused like an unknown type
    type: Literal["supervised", "dpo"]
    supervised: _Supervised | None = None
    dpo: _Dpo | None = None

    @model_validator(mode="after")
    def _block_matches_type(self) -> _Method:
        other = "dpo" if self.type == "supervised" else "supervised"
        if getattr(self, other) is not None:
            raise ValueError(f"method.{other} given but method.type is {self.type!r}")
        return self


class JobRequest(_Strict):
    """The body of POST /v1/fine_tuning/jobs."""

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    method: _Method | None = None
    hyperparameters: _Hyperparameters | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    suffix: str | None = Field(default=None, max_length=64)
    metadata: dict[Annotated[str, Field(max_length=64)],
                   Annotated[str, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    integrations: list[dict[str, Any]] | None = None

    @classmethod
    def parse(cls, body: Any) -> JobRequest:
        try:
            request = cls.model_validate(body)
        except ValidationError as exc:
            raise ApiError.from_validation(exc) from exc
        if request.method is not None and request.hyperparameters is not None:
            raise ApiError(400, "Pass hyperparameters inside 'method'; the top-level 'hyperparameters' is "
                                "deprecated and cannot be combined with it.", param="hyperparameters")
        return request

    def method_dict(self) -> dict[str, Any]:
        """The method as the job reports it, with the deprecated top-level hyperparameters folded in."""
        if self.method is None:
            hyper = (self.hyperparameters or _Hyperparameters()).model_dump()
            return {"type": "supervised", "supervised": {"hyperparameters": hyper}}
        block = getattr(self.method, self.method.type) or (_Supervised() if self.method.type == "supervised"
                                                           else _Dpo())
        return {"type": self.method.type, self.method.type: block.model_dump()}


def hyperparameters(method: dict[str, Any], *, resolved: bool) -> dict[str, Any]:
    """The method's hyperparameters; once the job runs, "auto" becomes the value the service picked."""
    hyper = dict(method[method["type"]]["hyperparameters"])
    if resolved:
        hyper = {k: _RESOLVED_AUTO[k] if v == "auto" else v for k, v in hyper.items()}
    return hyper


def file_object(record: FileRecord, status: str) -> dict[str, Any]:
    return {
        "id": record.id, "object": "file", "bytes": record.bytes, "created_at": int(record.created_at),
        "filename": record.filename, "purpose": record.purpose, "status": status,
        "status_details": record.problem if status == "error" else None, "expires_at": None,
    }


def job_object(record: JobRecord, progress: Progress) -> dict[str, Any]:
    running = progress.status not in ("validating_files", "queued")
    method = dict(record.method)
    method[method["type"]] = {"hyperparameters": hyperparameters(record.method, resolved=running)}
    succeeded = progress.status == "succeeded"
    return {
        "id": record.id, "object": "fine_tuning.job", "created_at": int(record.created_at),
        "model": record.model, "organization_id": ORGANIZATION, "status": progress.status,
        "training_file": record.training_file, "validation_file": record.validation_file,
        "hyperparameters": {k: v for k, v in method[method["type"]]["hyperparameters"].items()
                            if k != "beta"},
        "method": method, "seed": record.seed, "user_provided_suffix": record.suffix,
        "metadata": record.metadata,
        "integrations": record.integrations, "error": progress.error,
        "fine_tuned_model": record.fine_tuned_model if succeeded else None,
        "finished_at": _seconds(progress.finished_at),
        "trained_tokens": record.trained_tokens if succeeded else None,
        "estimated_finish": _seconds(progress.estimated_finish),
        "result_files": [record.result_file_id] if succeeded else [],
    }


def event_objects(record: JobRecord, progress: Progress) -> list[dict[str, Any]]:
    """Newest first; an event's id is its position in the job's history, so it never changes."""
    objects = [
        {"id": f"ftevent-{record.key}{n:05d}", "object": "fine_tuning.job.event", "created_at": int(e.at),
         "level": e.level, "message": e.message, "type": e.type, "data": e.data or {}}
        for n, e in enumerate(progress.events)
    ]
    return objects[::-1]


def checkpoint_objects(record: JobRecord, progress: Progress) -> list[dict[str, Any]]:
    """Newest first. Validation metrics appear only when the job has a validation file."""
    objects = []
    for checkpoint in reversed(progress.checkpoints):
        metrics = dict(checkpoint.metrics)
        if record.validation_file:
            metrics["valid_loss"] = round(metrics["train_loss"] * 1.07, 4)
            metrics["valid_mean_token_accuracy"] = round(metrics["train_mean_token_accuracy"] * 0.97, 4)
        objects.append({
            "id": f"ftckpt-{record.key}{checkpoint.step:05d}", "object": "fine_tuning.job.checkpoint",
            "created_at": int(checkpoint.at), "fine_tuning_job_id": record.id, "step_number": checkpoint.step,
            "fine_tuned_model_checkpoint": f"{record.fine_tuned_model}:ckpt-step-{checkpoint.step}",
            "metrics": metrics,
        })
    return objects


def page(items: list[dict[str, Any]], *, after: str | None, limit: int) -> dict[str, Any]:
    """One cursor page of `items` (already in list order): those after the id `after`, at most `limit`."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no item with id {after!r} in this list.", param="after")
        start = ids.index(after) + 1
    chunk = items[start:start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items)}


def _seconds(moment: float | None) -> int | None:
    return None if moment is None else int(moment)
