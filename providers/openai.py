"""OpenAI supervised fine-tuning through the `openai` SDK (>= 3.57, built on httpx2).

Flow: files.create(purpose="fine-tune") and wait for processing -> fine_tuning.jobs.create(method=supervised,
metadata={loraflow_key}) -> jobs.retrieve / list_events -> chat.completions on `fine_tuned_model`.
Auth: a bearer key from the environment variable named by `api_key_env` (OPENAI_API_KEY by default).
Quirks: `paused` is a real job status that the SDK's Literal omits; list pagination trusts `has_more`;
OpenAI exposes no LoRA rank, alpha, dropout or target modules and takes a learning-rate *multiplier*.
Docs: https://platform.openai.com/docs/api-reference/fine-tuning
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
)
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

NAME = "openai"
KEY_FIELD = "loraflow_key"

STATES: dict[str, JobState] = {
    "validating_files": JobState.PENDING,
    "queued": JobState.PENDING,
    "running": JobState.RUNNING,
    "paused": JobState.PAUSED,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
_DATA_ERROR_CODES = {"invalid_training_file", "invalid_validation_file", "invalid_file_format",
                     "file_too_large", "too_many_tokens", "invalid_n_examples"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str = Field(default="OPENAI_API_KEY", description="environment variable holding the API key")
    learning_rate_multiplier: float | Literal["auto"] = "auto"
    max_retries: int = Field(default=2, ge=0, le=10, description="SDK-level retries per request")
    timeout_s: float = Field(default=600, gt=0)
    file_poll_interval_s: float = Field(default=2.0, gt=0)
    file_wait_s: float = Field(default=1800, gt=0)


@contextmanager
def _translated() -> Iterator[None]:
    """Map the SDK's exceptions onto loraflow's error tree (the only place that knows them)."""
    try:
        yield
    except openai.APIStatusError as exc:
        status = exc.status_code
        message = f"HTTP {status}: {_error_message(exc)}"
        if status in (408, 409, 429) or status >= 500:
            raise TransientProviderError(NAME, message, status_code=status,
                                         retry_after=_retry_after(exc.response.headers)) from exc
        raise PermanentProviderError(NAME, message, status_code=status) from exc
    except openai.APIConnectionError as exc:
        raise TransientProviderError(NAME, f"connection failed: {exc}") from exc
    except (openai.APIResponseValidationError, ValueError, KeyError, TypeError) as exc:  # JSON/shape errors
        raise UnexpectedProviderResponse(NAME, f"response not understood: {exc}") from exc


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)


def _retry_after(headers) -> float | None:
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


class OpenAIProvider:
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = OpenAIOptions

    def __init__(self, client: openai.OpenAI, options: OpenAIOptions | None = None) -> None:
        self.client = client
        self.options = options or OpenAIOptions()

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> OpenAIProvider:
        try:
            opts = OpenAIOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="openai provider", prefix="provider.options") from exc
        key = api_key or os.environ.get(opts.api_key_env)
        if not key:
            raise ConfigError(f"openai provider: set the environment variable {opts.api_key_env} "
                              "(provider.options.api_key_env names it), or use provider.endpoint: emulator")
        client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=opts.max_retries,
                               timeout=opts.timeout_s)
        return cls(client, opts)

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        hidden = [k for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
                  if getattr(spec, k) is not None]
        if hidden:
            raise ConfigError(f"training.{hidden[0]}: OpenAI exposes no LoRA rank, alpha, dropout or target "
                              "modules (it chooses the adapter itself); remove "
                              + ", ".join(f"training.{k}" for k in hidden))
        if spec.learning_rate is not None:
            raise ConfigError("training.learning_rate: OpenAI takes a multiplier of its own default rate, not "
                              "an absolute rate; set provider.options.learning_rate_multiplier instead")
        if spec.epochs is not None and not 1 <= spec.epochs <= 50:
            raise ConfigError(f"training.epochs: OpenAI allows 1 to 50, got {spec.epochs}")
        if spec.batch_size is not None and not 1 <= spec.batch_size <= 256:
            raise ConfigError(f"training.batch_size: OpenAI allows 1 to 256, got {spec.batch_size}")
        return []

    def upload(self, data: PreparedDataset) -> DatasetRef:
        train_id = self._upload_file(data.train_path, f"loraflow-{data.sha256[:12]}-train.jsonl")
        validation_id = None
        if data.eval_path is not None and data.eval_examples:
            validation_id = self._upload_file(data.eval_path, f"loraflow-{data.sha256[:12]}-eval.jsonl")
        return DatasetRef(provider=NAME, train_file_id=train_id, validation_file_id=validation_id,
                          sha256=data.sha256)

    def _upload_file(self, path: Path, filename: str) -> str:
        with _translated():
            created = self.client.files.create(file=(filename, path.read_bytes()), purpose="fine-tune")
            try:
                done = self.client.files.wait_for_processing(
                    created.id, poll_interval=self.options.file_poll_interval_s,
                    max_wait_seconds=self.options.file_wait_s)
            except RuntimeError as exc:  # the SDK's timeout signal
                raise TransientProviderError(NAME, f"file {created.id} still processing: {exc}") from exc
        if done.status == "error":
            raise PermanentProviderError(NAME, f"file {path.name} rejected: {done.status_details}")
        return created.id

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        hyperparameters: dict[str, object] = {"learning_rate_multiplier": self.options.learning_rate_multiplier}
        if spec.epochs is not None:
            hyperparameters["n_epochs"] = spec.epochs
        if spec.batch_size is not None:
            hyperparameters["batch_size"] = spec.batch_size
        optional = {"validation_file": data.validation_file_id, "seed": spec.seed, "suffix": spec.suffix}
        with _translated():
            job = self.client.fine_tuning.jobs.create(
                model=spec.base_model,
                training_file=data.train_file_id,
                method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
                metadata={KEY_FIELD: idempotency_key},
                **{k: v for k, v in optional.items() if v is not None},
            )
        return JobRef(provider=NAME, job_id=job.id, idempotency_key=idempotency_key)

    def get_job(self, job: JobRef) -> JobStatus:
        with _translated():
            remote = self.client.fine_tuning.jobs.retrieve(job.job_id)
        state = STATES.get(remote.status)
        if state is None:
            raise UnexpectedProviderResponse(NAME, f"job {job.job_id} has unknown status {remote.status!r}")
        step, total, metrics = self._progress(job) if state in (JobState.RUNNING, JobState.SUCCEEDED) else (
            None, None, {})
        error = remote.error
        model = None
        if state is JobState.SUCCEEDED and remote.fine_tuned_model:
            model = ModelRef(provider=NAME, model_id=remote.fine_tuned_model, base_model=remote.model,
                             job_id=remote.id)
        return JobStatus(
            job=job, state=state, vendor_state=remote.status,
            message=(error.message or "") if error else "",
            data_at_fault=bool(error and (error.code in _DATA_ERROR_CODES or error.param == "training_file")),
            step=step, total_steps=total, metrics=metrics, model=model, trained_tokens=remote.trained_tokens,
            estimated_finish=datetime.fromtimestamp(remote.estimated_finish, UTC) if remote.estimated_finish
            else None,
        )

    def _progress(self, job: JobRef) -> tuple[int | None, int | None, dict[str, float]]:
        with _translated():
            events = self.client.fine_tuning.jobs.list_events(job.job_id, limit=20).data
        for event in events:  # newest first: the first metrics event is the latest step
            data = event.data if isinstance(event.data, dict) else {}
            if event.type == "metrics" and "step" in data:
                metrics = {k: float(v) for k, v in data.items()
                           if k not in ("step", "total_steps") and isinstance(v, int | float)}
                return int(data["step"]), data.get("total_steps"), metrics
        return None, None, {}

    def cancel(self, job: JobRef) -> None:
        try:
            with _translated():
                self.client.fine_tuning.jobs.cancel(job.job_id)
        except PermanentProviderError:
            # OpenAI refuses to cancel a job that already ended; for us that is the no-op the contract wants
            if not self.get_job(job).state.is_terminal:
                raise

    def find_job(self, idempotency_key: str) -> JobRef | None:
        with _translated():
            for remote in self.client.fine_tuning.jobs.list(metadata={KEY_FIELD: idempotency_key}, limit=50):
                if (remote.metadata or {}).get(KEY_FIELD) == idempotency_key:
                    return JobRef(provider=NAME, job_id=remote.id, idempotency_key=idempotency_key)
        return None

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        optional = {"seed": params.seed, "stop": params.stop}
        started = time.perf_counter()
        with _translated():
            response = self.client.chat.completions.create(
                model=model.model_id, messages=messages, temperature=params.temperature,
                top_p=params.top_p, max_completion_tokens=params.max_tokens,
                **{k: v for k, v in optional.items() if v is not None},
            )
        latency_ms = (time.perf_counter() - started) * 1000
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "", model_id=response.model, finish_reason=choice.finish_reason or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0, latency_ms=latency_ms,
        )
