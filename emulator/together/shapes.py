"""The Together wire shapes the emulator reads and writes (reference/providers.md §2.2-2.4).

The create body is validated with a pydantic model that forbids unknown keys (it lists what the
together 3.1.1 SDK sends), then against the model's limits from the catalog, as the service does with its
live limits. Responses are plain dicts: timestamps are ISO 8601 strings, statuses are Together's words
derived from the job's `Progress` (the OpenAI-worded timeline).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulator.timeline import RESTARTED, Progress
from emulator.together.store import TogetherFile, TogetherJob
from emulator.wire import ApiError
from providers.catalog import ModelFacts, model_facts

_DATA_CODES = {"invalid_training_file", "invalid_validation_file", "invalid_file_format"}
_DPO_PRICE_FACTOR = 2.5  # DPO costs about 2.5x SFT (reference/providers.md 7)
ACCOUNT_USER = "user-loraflow-emulator"


class JobRequest(BaseModel):
    """The body of POST /v1/fine-tunes as the SDK builds it (`FinetuneRequest`, None fields left out)."""

    model_config = ConfigDict(extra="forbid")

    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    packing: bool = True
    model: str = Field(min_length=1)
    n_epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    lr_scheduler: dict[str, Any] | None = None
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    n_checkpoints: int | None = Field(default=None, ge=1)
    n_evals: int | None = Field(default=None, ge=0)
    max_seq_length: int | None = None
    batch_size: int | Literal["max"] | None = None
    gradient_accumulation_steps: int | None = None
    suffix: str | None = Field(default=None, max_length=40)
    wandb_key: str | None = None
    wandb_base_url: str | None = None
    wandb_project_name: str | None = None
    wandb_name: str | None = None
    wandb_entity: str | None = None
    random_seed: int | None = None
    early_stopping_enabled: bool | None = None
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float | None = None
    early_stopping_warmup_evals: int | None = None
    training_type: dict[str, Any] | None = None
    training_method: dict[str, Any] = Field(
        default_factory=lambda: {"method": "sft", "train_on_inputs": "auto"})
    from_checkpoint: str | None = None
    multimodal_params: dict[str, Any] | None = None
    from_hf_model: str | None = None
    hf_model_revision: str | None = None
    hf_api_token: str | None = None
    hf_output_repo_name: str | None = None

    @classmethod
    def parse(cls, body: Any) -> dict[str, Any]:
        """The validated body with the server's defaults filled in (a LoRA job when no type is given)."""
        try:
            request = cls.model_validate(body)
        except ValidationError as exc:
            raise ApiError.from_validation(exc) from exc
        facts = facts_for(request.model, param="model")
        parsed = request.model_dump()
        parsed["training_type"] = _training_type(request, facts)
        _check_limits(parsed, facts)
        return parsed


def facts_for(model: str, *, param: str) -> ModelFacts:
    """The catalog facts of a fine-tunable Together model; 404 when it is not listed."""
    facts = model_facts("together", model)
    if facts is None or facts.lora is None:
        raise ApiError(404, f"Model {model!r} is not available for fine-tuning.", param=param,
                       code="model_not_found")
    return facts


def _training_type(request: JobRequest, facts: ModelFacts) -> dict[str, Any]:
    given = request.training_type or {"type": "Lora"}
    if given.get("type") == "Full":
        raise ApiError(400, f"Full fine-tuning is not available for {request.model}; use LoRA.",
                       param="training_type")
    if given.get("type") != "Lora":
        raise ApiError(400, f"Unknown training type {given.get('type')!r}.", param="training_type.type")
    rank = given.get("lora_r") or facts.lora.default_rank
    return {"type": "Lora", "lora_r": rank, "lora_alpha": given.get("lora_alpha") or 2 * rank,
            "lora_dropout": given.get("lora_dropout") or 0.0,
            "lora_trainable_modules": given.get("lora_trainable_modules") or "all-linear"}


def _check_limits(request: dict[str, Any], facts: ModelFacts) -> None:
    lora, lora_type = facts.lora, request["training_type"]
    method = request["training_method"].get("method")
    if method not in facts.methods:
        raise ApiError(400, f"Training method {method!r} is not available for {facts.model_id}.",
                       param="training_method.method")
    checks = [("n_epochs", request["n_epochs"], facts.epochs), ("learning_rate", request["learning_rate"],
                                                                  facts.learning_rate)]
    for param, value, allowed in checks:
        if allowed is not None and not allowed.contains(value):
            raise ApiError(400, f"{param} must be {allowed.describe()} for {facts.model_id}, got {value}.",
                           param=param, code="invalid_value")
    if not 1 <= lora_type["lora_r"] <= lora.max_rank:
        raise ApiError(400, f"lora_r must be 1 to {lora.max_rank} for {facts.model_id}.",
                       param="training_type.lora_r", code="invalid_value")
    modules = lora_type["lora_trainable_modules"]
    unknown = [] if modules == "all-linear" else sorted(set(modules.split(",")) - set(lora.target_modules))
    if unknown:
        raise ApiError(400, f"Unknown LoRA target modules {unknown}; allowed: all-linear or "
                            f"{', '.join(lora.target_modules)}.",
                       param="training_type.lora_trainable_modules")
    largest = lora.max_batch_size_dpo if method == "dpo" else lora.max_batch_size
    batch = request["batch_size"]
    if isinstance(batch, int) and not (lora.min_batch_size or 1) <= batch <= (largest or batch):
        raise ApiError(400, f"batch_size must be {lora.min_batch_size} to {largest} for {facts.model_id}.",
                       param="batch_size", code="invalid_value")


def iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def file_object(record: TogetherFile, status: str) -> dict[str, Any]:
    validated = status in ("COMPLETED", "INVALID_FORMAT")
    report = {"valid": status == "COMPLETED", "dataset_format": "CONVERSATION", "nlines": record.lines,
              "file_id": record.id, "error": record.problem, "error_type": "INVALID_FORMAT" if record.problem
              else None} if validated else None
    return {"id": record.id, "object": "file", "bytes": record.bytes, "created_at": int(record.created_at),
            "filename": record.filename, "FileType": record.file_type, "purpose": record.purpose,
            "processing_status": status, "validation_report": report}


def vendor_status(progress: Progress) -> str:
    """Together's word for a moment of the timeline."""
    if progress.status == "running" and progress.finishing is not None:
        return "compressing" if progress.finishing < 0.5 else "uploading"
    if progress.status == "failed":
        return "user_error" if (progress.error or {}).get("code") in _DATA_CODES else "error"
    return {"validating_files": "pending", "queued": "queued", "running": "running", "paused": "running",
            "succeeded": "completed", "cancelled": "cancelled"}[progress.status]


def job_object(job: TogetherJob, progress: Progress, now: float, *,
               status: str | None = None) -> dict[str, Any]:
    request, steps = job.request, job.timeline.steps
    remaining = None if progress.estimated_finish is None else max(0, int(progress.estimated_finish - now))
    return {
        "id": job.id, "object": "finetune", "status": status or vendor_status(progress),
        "user_id": ACCOUNT_USER,
        "created_at": iso(job.created_at), "updated_at": iso(progress.finished_at or now),
        "started_at": iso(progress.started_at), "model": job.model, "model_output_name": job.output_name,
        "adapter_output_name": f"{job.output_name}-adapter", "suffix": request.get("suffix"),
        "training_file": request["training_file"], "validation_file": request.get("validation_file") or None,
        "n_epochs": request["n_epochs"], "learning_rate": request["learning_rate"],
        "batch_size": request.get("batch_size"), "n_checkpoints": request.get("n_checkpoints"),
        "n_evals": request.get("n_evals"), "lr_scheduler": request.get("lr_scheduler"),
        "warmup_ratio": request.get("warmup_ratio"), "max_grad_norm": request.get("max_grad_norm"),
        "weight_decay": request.get("weight_decay"), "training_type": request["training_type"],
        "training_method": request["training_method"], "random_seed": request.get("random_seed"),
        "token_count": job.token_count, "steps_completed": progress.step, "total_steps": steps,
        "epochs_completed": request["n_epochs"] * progress.step // steps, "queue_depth":
            1 if progress.status == "queued" else 0,
        "progress": {"estimate_available": remaining is not None, "seconds_remaining": remaining or 0},
        "events": event_objects(job, progress),
    }


def event_objects(job: TogetherJob, progress: Progress) -> list[dict[str, Any]]:
    """Oldest first, in Together's event types."""
    events = [_event(job.created_at, "job_pending", "Fine-tune request created")]
    if progress.started_at is not None:
        events.append(_event(progress.started_at, "job_start", "Job started"))
        events.append(_event(progress.started_at, "training_start", "Training started",
                             total_steps=job.timeline.steps))
    for checkpoint in progress.checkpoints:
        events.append(_event(checkpoint.at, "checkpoint_save", f"Checkpoint saved at step {checkpoint.step}",
                             step=checkpoint.step, total_steps=job.timeline.steps,
                             checkpoint_path=_checkpoint_path(job, checkpoint.step)))
    end = progress.finished_at
    if progress.status == "succeeded":
        events.append(_event(end, "training_complete", "Training completed"))
        events.append(_event(end, "job_complete", "Job completed", model_path=job.output_name))
    elif progress.error == RESTARTED:
        successor = f" as {job.successor}" if job.successor else ""
        events.append(_event(end, "job_restarted",
                             f"Job restarted{successor} after an infrastructure failure", level="warning"))
    elif progress.status == "failed":
        events.append(_event(end, "job_error", f"Job failed: {progress.error['message']}", level="error"))
    elif progress.status == "cancelled":
        events.append(_event(end, "cancel_requested", "Cancel requested"))
        events.append(_event(end, "job_stopped", "Job stopped"))
    return events


def _event(at: float, kind: str, message: str, *, level: str = "info", **fields: Any) -> dict[str, Any]:
    return {"object": "fine-tune-event", "created_at": iso(at), "type": kind, "level": level,
            "message": message, **fields}


def metric_rows(progress: Progress) -> list[dict[str, float]]:
    """Chronological per-step training metrics."""
    return [{"global_step": float(e.data["step"]), "train_loss": e.data["train_loss"],
             "train_mean_token_accuracy": e.data["train_mean_token_accuracy"]}
            for e in progress.events if e.type == "metrics" and e.data]


def checkpoint_objects(job: TogetherJob, progress: Progress) -> list[dict[str, Any]]:
    """Newest first; the last step is the final checkpoint once the job completed."""
    final = job.timeline.steps if progress.status == "succeeded" else None
    return [{"checkpoint_type": "Final" if c.step == final else f"Intermediate (step {c.step})",
             "created_at": iso(c.at), "path": _checkpoint_path(job, c.step), "step": c.step,
             "checkpoint": "adapter", "object_name": f"{job.output_name}-step-{c.step}"}
            for c in reversed(progress.checkpoints)]


def _checkpoint_path(job: TogetherJob, step: int) -> str:
    return f"s3://loraflow-emulator/{job.id}/checkpoint-{step}"


def limits_object(facts: ModelFacts) -> dict[str, Any]:
    """GET /v1/fine-tunes/models/limits: the catalog's facts in the service's shape (fixed values where the
    catalog is silent)."""
    lora, context = facts.lora, facts.context_tokens or 8192
    return {
        "model_name": facts.model_id, "default_gradient_accumulation_steps": 1,
        "lora_training": {"default_rank": lora.default_rank, "max_rank": lora.max_rank,
                          "min_batch_size": lora.min_batch_size or 1,
                          "max_batch_size": lora.max_batch_size or 1,
                          "max_batch_size_dpo": lora.max_batch_size_dpo or lora.max_batch_size or 1,
                          "target_modules": lora.target_modules},
        "full_training": None, "supports_full_training": False,
        "max_learning_rate": facts.learning_rate.max if facts.learning_rate else 1.0,
        "min_learning_rate": facts.learning_rate.min if facts.learning_rate else 0.0,
        "max_num_epochs": int(facts.epochs.max) if facts.epochs else 20, "max_num_evals": 100,
        "max_num_checkpoints": 20, "max_seq_length_sft": context, "max_seq_length_dpo": context // 2,
        "min_max_seq_length": 512, "merge_output_lora": True, "supports_tools": True,
        "supports_vision": False, "supports_reasoning": False,
    }


def price_estimate(facts: ModelFacts, train_tokens: int, epochs: int, method: str) -> dict[str, Any]:
    rate = (facts.training_usd_per_1m_tokens or 0.0) * (_DPO_PRICE_FACTOR if method == "dpo" else 1.0)
    return {"estimation_available": True, "estimated_train_token_count": float(train_tokens * epochs),
            "estimated_eval_token_count": 0.0, "estimated_total_price": train_tokens * epochs * rate / 1e6,
            "allowed_to_proceed": True, "user_limit": 1000.0}
