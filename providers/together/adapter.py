"""Together AI LoRA fine-tuning through the `together` SDK (>= 3.1, built on httpx).

Flow: files.upload (POST /v1/files -> 302 to a presigned PUT -> /preprocess; 409 means the content is
already there) and wait until it is validated -> fine_tuning.create(lora=True, rank/alpha/dropout/modules,
suffix carrying the idempotency tag) -> retrieve + list_metrics -> chat.completions on `model_output_name`;
`download_adapter` saves the adapter archive. Auth: a bearer key from the environment variable named by
`api_key_env` (TOGETHER_API_KEY by default).
Quirks: create() silently drops the LoRA knobs unless lora=True, and makes three requests (limits,
estimate-price, create); jobs have no metadata, so the idempotency key travels as a short tag at the end of
the suffix (Together puts the suffix into the output name); a job Together restarts under a new id ends
in `error` with a `job_restarted` event, and get_job follows it to the newest job carrying the same tag.
Docs: https://docs.together.ai/reference/post-fine-tunes
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import together
from pydantic import BaseModel

from providers.base import (
    Completion,
    DatasetRef,
    Decoding,
    JobRef,
    JobState,
    JobStatus,
    Message,
    ModelRef,
    PreparedDataset,
    TrainingSpec,
    created_or_found,
)
from providers.catalog import check_training_knobs, model_facts
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.hosted import completion, is_preference_data, options_and_key
from providers.together import serving
from providers.together.client import NAME, TogetherOptions, translated
from providers.together.limits import model_limits

TAG_LENGTH = 12  # "lf" + 10 hex digits of sha256(idempotency key)
MAX_SUFFIX = 40

STATES: dict[str, JobState] = {
    "pending": JobState.PENDING,
    "queued": JobState.PENDING,
    "running": JobState.RUNNING,
    "compressing": JobState.RUNNING,
    "uploading": JobState.RUNNING,
    "cancel_requested": JobState.CANCELLING,
    "cancelled": JobState.CANCELLED,
    "error": JobState.FAILED,
    "user_error": JobState.FAILED,
    "completed": JobState.SUCCEEDED,
}
_OBSERVED = (JobState.RUNNING, JobState.SUCCEEDED)
_FILE_DONE = ("COMPLETED", "FAILED", "INVALID_FORMAT")


@dataclass(frozen=True)
class PriceEstimate:
    """Together's own estimate for a job (POST /v1/fine-tunes/estimate-price)."""

    usd: float | None
    train_tokens: float | None
    allowed_to_proceed: bool | None
    unavailable_reason: str | None = None


def idempotency_tag(key: str) -> str:
    """The short tag a job's suffix ends with, standing for the idempotency key."""
    return "lf" + hashlib.sha256(key.encode()).hexdigest()[:TAG_LENGTH - 2]


def _vendor_file(path: Path) -> Path:
    """The file Together trains on. The prepared chat JSONL is Together's "conversational" format (and the
    DPO shape its preference format), so it goes as-is; a providers.formats writer plugs in here when a
    dataset needs converting."""
    return path


class TogetherProvider:
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = TogetherOptions

    def __init__(self, client: together.Together, options: TogetherOptions | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.options = options or TogetherOptions()
        self._sleep = sleep

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> TogetherProvider:
        opts, key = options_and_key(TogetherOptions, options, provider=NAME, api_key=api_key)
        client = together.Together(api_key=key, base_url=base_url, max_retries=opts.max_retries,
                                   timeout=opts.timeout_s)
        return cls(client, opts)

    # -- before anything is uploaded -------------------------------------------------------------

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """Check the knobs against the model's limits: Together's own when reachable, else the catalog."""
        if spec.suffix is not None and len(spec.suffix) > MAX_SUFFIX - TAG_LENGTH - 1:
            raise ConfigError(f"training.suffix: at most {MAX_SUFFIX - TAG_LENGTH - 1} characters on "
                              f"Together (it allows {MAX_SUFFIX}; loraflow appends a {TAG_LENGTH}-character "
                              "idempotency tag)")
        facts, warnings = model_limits(self.client, spec.base_model, live=self.options.live_limits)
        check_training_knobs(facts, spec, "Together")
        if facts.origin == "catalog" and facts.confidence == "recalled":
            warnings.append(f"Together limits for {spec.base_model} come from recalled catalog facts (as of "
                            f"{facts.as_of}); Together checks them again at create")
        if facts.serverless_lora is False:
            warnings.append(f"a LoRA fine-tune of {spec.base_model} is not served per token: it is evaluated "
                            f"on a dedicated endpoint ({self.options.endpoint_hardware}), billed per minute "
                            "while it runs and deleted unless the candidate is accepted")
        return warnings

    def estimate_price(self, spec: TrainingSpec, data: DatasetRef) -> PriceEstimate:
        """Together's price for this job, before it is created (a method beyond the Provider protocol)."""
        training_type = {"type": "Lora", **self._lora(spec)}
        with translated():
            answer = self.client.fine_tuning.estimate_price(
                training_file=data.train_file_id, model=spec.base_model, n_epochs=spec.epochs or 1,
                n_evals=self.options.n_evals, training_type=training_type,
                validation_file=data.validation_file_id or together.omit)
        if answer.estimation_available is False:
            return PriceEstimate(None, None, None, unavailable_reason=answer.unavailable_reason)
        return PriceEstimate(answer.estimated_total_price, answer.estimated_train_token_count,
                             answer.allowed_to_proceed)

    # -- data ------------------------------------------------------------------------------------

    def upload(self, data: PreparedDataset) -> DatasetRef:
        train_id = self._upload_file(data.train_path)
        validation_id = None
        if data.eval_path is not None and data.eval_examples:
            validation_id = self._upload_file(data.eval_path)
        return DatasetRef(provider=NAME, train_file_id=train_id, validation_file_id=validation_id,
                          sha256=data.sha256)

    def _upload_file(self, path: Path) -> str:
        deadline = time.monotonic() + self.options.file_wait_s
        with translated():
            # tasks/data validated the file already, so the SDK's local check is skipped
            record = self.client.files.upload(_vendor_file(path), purpose="fine-tune", check=False)
            if record.processing_status == "PENDING":
                # a 409 "already uploaded" answer skips the SDK's preprocess call; asking again is harmless
                record = self.client.post(f"/v1/files/{record.id}/preprocess",
                                          cast_to=together.types.FileResponse)
            while record.processing_status not in _FILE_DONE:
                if time.monotonic() > deadline:
                    raise TransientProviderError(NAME, f"file {record.id} still {record.processing_status} "
                                                       f"after {self.options.file_wait_s:g} s")
                self._sleep(self.options.file_poll_interval_s)
                record = self.client.files.retrieve(record.id)
            if record.processing_status != "COMPLETED" and record.validation_report is None:
                record = self.client.files.retrieve(record.id)  # upload() drops the report it was given
        if record.processing_status != "COMPLETED":
            reason = getattr(record.validation_report, "error", None) or "no reason given"
            raise PermanentProviderError(NAME, f"file {path.name} rejected ({record.processing_status}): "
                                               f"{reason}")
        return record.id

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        with translated():
            preference = is_preference_data(self.client, data.train_file_id)
        method: dict[str, Any] = (
            {"training_method": "dpo", "dpo_beta": self.options.dpo_beta} if preference
            else {"training_method": "sft", "train_on_inputs": self.options.train_on_inputs})
        optional = {"n_epochs": spec.epochs, "learning_rate": spec.learning_rate,
                    "batch_size": spec.batch_size, "random_seed": spec.seed}

        def create() -> JobRef:
            with translated():
                job = self._create(
                    training_file=data.train_file_id, model=spec.base_model,
                    validation_file=data.validation_file_id or "", n_evals=self.options.n_evals,
                    n_checkpoints=self.options.n_checkpoints, warmup_ratio=self.options.warmup_ratio,
                    lr_scheduler_type=self.options.lr_scheduler, suffix=_suffix(spec.suffix, idempotency_key),
                    lora=True, **self._lora(spec), **method,
                    **{k: v for k, v in optional.items() if v is not None})
            return JobRef(provider=NAME, job_id=job.id, idempotency_key=idempotency_key)

        return created_or_found(create, lambda: self.find_job(idempotency_key))

    def _create(self, **arguments: Any) -> Any:
        # no SDK retries: a create whose answer was lost may have made a job, so look before retrying
        try:
            return self.client.with_options(max_retries=0).fine_tuning.create(**arguments)
        except json.JSONDecodeError:
            raise
        except ValueError as exc:  # the SDK checks the knobs against the model's limits before sending
            raise ConfigError(f"training: Together refuses these settings: {exc}") from exc

    @staticmethod
    def _lora(spec: TrainingSpec) -> dict[str, Any]:
        modules = ",".join(spec.lora_target_modules or ["all-linear"])
        lora: dict[str, Any] = {"lora_r": spec.lora_r, "lora_alpha": spec.lora_alpha,
                                "lora_dropout": spec.lora_dropout or 0.0, "lora_trainable_modules": modules}
        return {k: v for k, v in lora.items() if v is not None}

    def get_job(self, job: JobRef) -> JobStatus:
        with translated():
            remote = self.client.fine_tuning.retrieve(job.job_id)
        state = STATES.get(remote.status)
        if state is None:
            raise UnexpectedProviderResponse(NAME, f"job {job.job_id} has unknown status {remote.status!r}")
        message, data_at_fault = "", remote.status == "user_error"
        if state in (JobState.FAILED, JobState.CANCELLED):
            with translated():
                events = self.client.fine_tuning.list_events(job.job_id).data
            if any(event.type == "job_restarted" for event in events):
                return self._follow_restart(job, remote)
            errors = [event.message for event in events if event.level == "error"]
            message = errors[-1] if errors else ""
        step, metrics = self._progress(job) if state in _OBSERVED else (None, {})
        model = None
        if state is JobState.SUCCEEDED and remote.x_model_output_name:
            model = ModelRef(provider=NAME, model_id=remote.x_model_output_name,
                             base_model=remote.model or "", job_id=remote.id)
        elif state is JobState.SUCCEEDED:
            state, message = JobState.RUNNING, "completed; waiting for the output model name"
        return JobStatus(job=job, state=state, vendor_state=remote.status, message=message,
                         data_at_fault=data_at_fault, step=step,
                         total_steps=_extra_int(remote, "total_steps"),
                         metrics=metrics, model=model, trained_tokens=remote.token_count if model else None,
                         estimated_finish=_estimated_finish(remote))

    def _progress(self, job: JobRef) -> tuple[int | None, dict[str, float]]:
        with translated():
            rows = self.client.fine_tuning.list_metrics(job.job_id).metrics or []
        if not rows:
            return None, {}
        latest = rows[-1]
        step = latest.get("global_step")
        return (int(step) if step is not None else None), {k: float(v) for k, v in latest.items()
                                                            if k != "global_step"}

    def _follow_restart(self, job: JobRef, remote: Any) -> JobStatus:
        """The status of the job Together started in place of `job`: the newest carrying the same tag."""
        successor = self._newest_with_tag(_tag_of(job, remote), newer_than=remote)
        if successor is None:
            return JobStatus(job=job, state=JobState.PENDING, vendor_state=remote.status,
                             message="restarted by Together; the new job is not listed yet")
        return self.get_job(JobRef(provider=NAME, job_id=successor, idempotency_key=job.idempotency_key))

    def cancel(self, job: JobRef) -> None:
        try:
            with translated():
                self.client.fine_tuning.cancel(job.job_id)
        except PermanentProviderError:
            # an ended job cannot be cancelled: a no-op for us, unless Together restarted it under a new id
            status = self.get_job(job)
            if status.job.job_id != job.job_id:
                self.cancel(status.job)
            elif not status.state.is_terminal:
                raise

    # -- serving (providers.base.ServesModels): only where the catalog says a dedicated endpoint --------

    def serve(self, model: ModelRef, *, name: str) -> ModelRef:
        facts = model_facts(NAME, model.base_model)
        if facts is None or facts.serving != "dedicated_endpoint":
            return model  # served per token by its name
        return serving.serve(self.client, model, name=name, hardware=self.options.endpoint_hardware,
                             max_replicas=self.options.endpoint_max_replicas,
                             wait_s=self.options.serve_wait_s, poll_s=self.options.serve_poll_s,
                             sleep=self._sleep)

    def unserve(self, served: ModelRef) -> None:
        serving.unserve(self.client, served)

    def find_job(self, idempotency_key: str) -> JobRef | None:
        found = self._newest_with_tag(idempotency_tag(idempotency_key))
        return None if found is None else JobRef(provider=NAME, job_id=found, idempotency_key=idempotency_key)

    def _newest_with_tag(self, tag: str, newer_than: Any = None) -> str | None:
        """The id of the newest listed job whose suffix ends with `tag` (created after `newer_than`)."""
        with translated():
            jobs = self.client.fine_tuning.list().data
        tagged = [j for j in jobs if (j.suffix or "").endswith(tag) and (
            newer_than is None or (j.id != newer_than.id and j.created_at >= newer_than.created_at))]
        return max(tagged, key=lambda j: j.created_at).id if tagged else None

    def checkpoints(self, job: JobRef) -> list[dict[str, Any]]:
        """The job's saved checkpoints, newest first: step, kind, created_at, path (beyond the Protocol)."""
        with translated():
            listed = self.client.fine_tuning.list_checkpoints(job.job_id).data
        return [{"step": c.step, "kind": c.checkpoint_type, "created_at": c.created_at, "path": c.path}
                for c in listed]

    def download_adapter(self, job: JobRef, dest: Path) -> Path:
        """Save the finished job's LoRA adapter archive to `dest` (written whole or not at all)."""
        partial = dest.with_name(f".{dest.name}.partial")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with translated(), self.client.fine_tuning.with_streaming_response.content(
                    ft_id=job.job_id, checkpoint="adapter") as response, partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    # -- inference -------------------------------------------------------------------------------

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        optional = {"seed": params.seed, "stop": params.stop}
        started = time.perf_counter()
        with translated():
            response = self.client.chat.completions.create(
                model=model.model_id, messages=messages, temperature=params.temperature, top_p=params.top_p,
                max_tokens=params.max_tokens, **{k: v for k, v in optional.items() if v is not None})
            return completion(response, started)


def _suffix(suffix: str | None, idempotency_key: str) -> str:
    return "-".join(part for part in (suffix, idempotency_tag(idempotency_key)) if part)


def _tag_of(job: JobRef, remote: Any) -> str:
    if job.idempotency_key:
        return idempotency_tag(job.idempotency_key)
    return str(getattr(remote, "suffix", "") or "")[-TAG_LENGTH:] or job.job_id


def _extra_int(remote: Any, field: str) -> int | None:
    # total_steps is served but missing from the generated retrieve type (it is in the SDK's lib type)
    value = (remote.model_extra or {}).get(field)
    return int(value) if isinstance(value, int | float) else None


def _estimated_finish(remote: Any) -> datetime | None:
    progress = remote.progress
    if progress is None or not progress.estimate_available:
        return None
    return datetime.now(UTC) + timedelta(seconds=progress.seconds_remaining)
