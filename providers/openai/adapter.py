"""OpenAI fine-tuning (supervised and DPO) through the `openai` SDK (>= 3.57, built on httpx2).

Flow: files.create(purpose="fine-tune") and wait for processing -> fine_tuning.jobs.create(method=supervised
or dpo, metadata={loraflow_key}) -> jobs.retrieve + metrics events -> chat.completions on `fine_tuned_model`;
the result CSV of a finished job is its loss curve. Auth: a bearer key from the environment variable named
by `api_key_env` (OPENAI_API_KEY by default).
Quirks: `paused` is a real job status that the SDK's Literal omits; list pagination trusts `has_more`;
OpenAI exposes no LoRA rank, alpha, dropout or target modules and takes a learning-rate *multiplier*;
there is no idempotency header, so a create is never retried blindly (the metadata key is looked up first).
Self-serve fine-tuning takes no new jobs after 2027-01-06 and the gpt-4o family shuts down on 2027-01-14
(catalog.yaml): check_spec warns before those dates and refuses after them.
Docs: https://platform.openai.com/docs/api-reference/fine-tuning
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx2
import openai
from pydantic import BaseModel, ConfigDict, Field

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
from providers.catalog import ModelFacts, check_training_knobs, model_facts
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.hosted import completion, is_preference_data, options_and_key, translated

NAME = "openai"
VENDOR_HOST = "api.openai.com"
KEY_FIELD = "loraflow_key"
_FILE_SCAN = 1000  # the newest fine-tune files searched for an earlier upload of the same data

STATES: dict[str, JobState] = {
    "validating_files": JobState.PENDING,
    "queued": JobState.PENDING,
    "running": JobState.RUNNING,
    "paused": JobState.PAUSED,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
_OBSERVED = (JobState.RUNNING, JobState.PAUSED, JobState.SUCCEEDED)  # states with steps worth reading
_DATA_ERROR_CODES = {"invalid_training_file", "invalid_validation_file", "invalid_file_format",
                     "file_too_large", "too_many_tokens", "invalid_n_examples"}
_HIDDEN_KNOBS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str = Field(default="OPENAI_API_KEY", description="environment variable holding the API key")
    learning_rate_multiplier: float | Literal["auto"] = "auto"
    dpo_beta: float | Literal["auto"] = Field(default="auto", description="DPO only: the preference strength")
    max_retries: int = Field(default=2, ge=0, le=10,
                             description="SDK-level retries per request (never create)")
    timeout_s: float = Field(default=600, gt=0)
    file_poll_interval_s: float = Field(default=2.0, gt=0)
    file_wait_s: float = Field(default=1800, gt=0)


def _translated(provider: str = NAME) -> AbstractContextManager[None]:
    # streamed bodies (a file's first line) are read through httpx2 directly, so its errors arrive unwrapped
    return translated(provider, openai, transport=(httpx2.TransportError,))


def _today() -> date:
    return datetime.now(UTC).date()


class OpenAIProvider:
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = OpenAIOptions
    vendor: ClassVar[str] = "OpenAI"  # in messages about the vendor's own service dates
    vendor_hosts: ClassVar[tuple[str, ...]] = (VENDOR_HOST,)  # where those dates bind
    states: ClassVar[dict[str, JobState]] = STATES

    def __init__(self, client: openai.OpenAI, options: OpenAIOptions | None = None, *,
                 today: Callable[[], date] = _today, enforce_dates: bool | None = None) -> None:
        self.client = client
        self.options = options or OpenAIOptions()
        self._today = today
        # OpenAI's service dates bind OpenAI: an emulator or another endpoint speaking its API only warns
        self._enforce_dates = (str(client.base_url.host).endswith(self.vendor_hosts)
                               if enforce_dates is None
                               else enforce_dates)

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> OpenAIProvider:
        opts, key = options_and_key(OpenAIOptions, options, provider=NAME, api_key=api_key)
        client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=opts.max_retries,
                               timeout=opts.timeout_s)
        return cls(client, opts)

    # -- before anything is uploaded -------------------------------------------------------------

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """Refuse what OpenAI hides or does not allow; warn about service dates (refuse once passed)."""
        hidden = [k for k in _HIDDEN_KNOBS if getattr(spec, k) is not None]
        if hidden:
            raise ConfigError(f"training.{hidden[0]}: OpenAI exposes no LoRA rank, alpha, dropout or target "
                              "modules (it chooses the adapter itself); remove "
                              + ", ".join(f"training.{k}" for k in hidden))
        if spec.learning_rate is not None:
            raise ConfigError("training.learning_rate: OpenAI takes a multiplier of its own default rate, "
                              "not an absolute rate; set provider.options.learning_rate_multiplier instead")
        facts = model_facts(self.name, spec.base_model)
        if facts is None:
            unchecked = "its hyperparameter ranges and service dates are not checked before submission"
            return [f"{spec.base_model} is not in the catalog: {unchecked}"]
        check_training_knobs(facts, spec, "OpenAI")
        multiplier, allowed = self.options.learning_rate_multiplier, facts.learning_rate_multiplier
        if multiplier != "auto" and allowed is not None and not allowed.contains(multiplier):
            raise ConfigError("provider.options.learning_rate_multiplier: OpenAI allows "
                              f"{allowed.describe()} for {facts.model_id}, got {multiplier:g} "
                              f"({facts.origin}, as of {facts.as_of})")
        return _service_dates(facts, self._today(), enforce=self._enforce_dates, vendor=self.vendor)

    # -- data ------------------------------------------------------------------------------------

    def upload(self, data: PreparedDataset) -> DatasetRef:
        train_id = self._upload_file(data.train_path, f"loraflow-{data.sha256[:12]}-train.jsonl")
        validation_id = None
        if data.eval_path is not None and data.eval_examples:
            validation_id = self._upload_file(data.eval_path, f"loraflow-{data.sha256[:12]}-eval.jsonl")
        return DatasetRef(provider=self.name, train_file_id=train_id, validation_file_id=validation_id,
                          sha256=data.sha256)

    def _upload_file(self, path: Path, filename: str) -> str:
        with _translated(self.name):
            created = self._uploaded_before(filename, path.stat().st_size)
            if created is None:
                # no SDK retries: an upload whose answer was lost may have landed, so the retry (the task's)
                # looks for it first instead of sending the bytes again
                created = self.client.with_options(max_retries=0).files.create(
                    file=(filename, path.read_bytes()), purpose="fine-tune")
            try:
                done = self.client.files.wait_for_processing(
                    created.id, poll_interval=self.options.file_poll_interval_s,
                    max_wait_seconds=self.options.file_wait_s)
            except RuntimeError as exc:  # the SDK's timeout signal
                raise TransientProviderError(self.name, f"file {created.id} still processing: {exc}") from exc
        if done.status == "error":
            raise PermanentProviderError(self.name, f"file {path.name} rejected: {done.status_details}")
        return created.id

    def _uploaded_before(self, filename: str, size: int) -> Any:
        """A file this adapter uploaded earlier with the same content (the name carries the dataset hash),
        so a run killed between the upload and its local record does not upload again."""
        for file in self.client.files.list(purpose="fine-tune", order="desc", limit=_FILE_SCAN).data:
            if file.filename == filename and file.bytes == size and file.status != "error":
                return file
        return None

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        method = self._method(spec, data.train_file_id)
        optional = {"validation_file": data.validation_file_id, "seed": spec.seed, "suffix": spec.suffix}

        def create() -> JobRef:
            with _translated(self.name):
                # no SDK retries: a create whose answer was lost may have made a job, so look before retrying
                job = self.client.with_options(max_retries=0).fine_tuning.jobs.create(
                    model=spec.base_model, training_file=data.train_file_id, method=method,
                    metadata={KEY_FIELD: idempotency_key},
                    **{k: v for k, v in optional.items() if v is not None})
            return JobRef(provider=self.name, job_id=job.id, idempotency_key=idempotency_key)

        return created_or_found(create, lambda: self.find_job(idempotency_key))

    def _method(self, spec: TrainingSpec, train_file_id: str) -> dict[str, Any]:
        hyperparameters: dict[str, Any] = {"learning_rate_multiplier": self.options.learning_rate_multiplier}
        if spec.epochs is not None:
            hyperparameters["n_epochs"] = spec.epochs
        if spec.batch_size is not None:
            hyperparameters["batch_size"] = spec.batch_size
        if not self._is_preference_data(train_file_id):
            return {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
        return {"type": "dpo", "dpo": {"hyperparameters": {**hyperparameters, "beta": self.options.dpo_beta}}}

    def _is_preference_data(self, file_id: str) -> bool:
        with _translated(self.name):
            return is_preference_data(self.client, file_id)

    def get_job(self, job: JobRef) -> JobStatus:
        with _translated(self.name):
            remote = self.client.fine_tuning.jobs.retrieve(job.job_id)
        state = self.states.get(remote.status)
        if state is None:
            raise UnexpectedProviderResponse(self.name,
                                             f"job {job.job_id} has unknown status {remote.status!r}")
        step, total, metrics = self._progress(job, state) if state in _OBSERVED else (None, None, {})
        error, model, message = remote.error, None, ""
        if state is JobState.SUCCEEDED and remote.fine_tuned_model:
            model = ModelRef(provider=self.name, model_id=remote.fine_tuned_model, base_model=remote.model,
                             job_id=remote.id)
        elif state is JobState.SUCCEEDED:
            # success reported before the model id is published: keep polling rather than lose the model
            state, message = JobState.RUNNING, "succeeded; waiting for the fine-tuned model id"
        return JobStatus(
            job=job, state=state, vendor_state=remote.status,
            message=(error.message or "") if error else message,
            data_at_fault=bool(error and (error.code in _DATA_ERROR_CODES or error.param == "training_file")),
            step=step, total_steps=total, metrics=metrics, model=model, trained_tokens=remote.trained_tokens,
            estimated_finish=datetime.fromtimestamp(remote.estimated_finish, UTC) if remote.estimated_finish
            else None,
        )

    def _progress(self, job: JobRef, state: JobState) -> tuple[int | None, int | None, dict[str, float]]:
        """The latest `metrics` event; once the job succeeded, its newest checkpoint's metrics on top."""
        step, total, metrics = None, None, {}
        with _translated(self.name):
            events = self.client.fine_tuning.jobs.list_events(job.job_id, limit=20).data
            for event in events:  # newest first: the first metrics event is the latest step
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "metrics" and "step" in data:
                    step, total, metrics = int(data["step"]), data.get("total_steps"), _numbers(data)
                    break
            if state is JobState.SUCCEEDED:
                checkpoints = self.client.fine_tuning.jobs.checkpoints.list(job.job_id, limit=1).data
                if checkpoints and checkpoints[0].metrics is not None:
                    metrics |= _numbers(checkpoints[0].metrics.model_dump(exclude_none=True))
        return step, total, metrics

    def loss_curve(self, job: JobRef) -> list[dict[str, float]]:
        """The finished job's result CSV as rows of floats (step, train_loss, ...); empty cells left out.

        Empty while the job has no result file (it has not succeeded)."""
        with _translated(self.name):
            remote = self.client.fine_tuning.jobs.retrieve(job.job_id)
            if not remote.result_files:
                return []
            text = self.client.files.content(remote.result_files[0]).text
        try:
            return [{k: float(v) for k, v in row.items() if k and v not in (None, "")}
                    for row in csv.DictReader(io.StringIO(text))]
        except ValueError as exc:
            raise UnexpectedProviderResponse(
                self.name, f"result file of job {job.job_id} is not numeric CSV: {exc}") from exc

    def cancel(self, job: JobRef) -> None:
        try:
            with _translated(self.name):
                self.client.fine_tuning.jobs.cancel(job.job_id)
        except PermanentProviderError:
            # OpenAI refuses to cancel a job that already ended; for us that is the no-op the contract wants
            if not self.get_job(job).state.is_terminal:
                raise

    def find_job(self, idempotency_key: str) -> JobRef | None:
        with _translated(self.name):
            for remote in self.client.fine_tuning.jobs.list(metadata={KEY_FIELD: idempotency_key}, limit=50):
                if (remote.metadata or {}).get(KEY_FIELD) == idempotency_key:
                    return JobRef(provider=self.name, job_id=remote.id, idempotency_key=idempotency_key)
        return None

    # -- inference -------------------------------------------------------------------------------

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        optional = {"seed": params.seed, "stop": params.stop, "response_format": _response_format(params)}
        started = time.perf_counter()
        with _translated(self.name):
            response = self.client.chat.completions.create(
                model=model.model_id, messages=messages, temperature=params.temperature,
                top_p=params.top_p, max_completion_tokens=params.max_tokens,
                **{k: v for k, v in optional.items() if v is not None},
            )
            return completion(response, started)


def _response_format(params: Decoding) -> dict[str, Any] | None:
    """Structured outputs: the answer must validate against the schema (strict mode)."""
    if params.json_schema is None:
        return None
    return {"type": "json_schema",
            "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True}}


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items()
            if k not in ("step", "total_steps") and isinstance(v, int | float) and not isinstance(v, bool)}


def _service_dates(facts: ModelFacts, today: date, *, enforce: bool, vendor: str = "OpenAI"
                   ) -> list[str]:
    """Warnings for the dates ahead; once a job can no longer be useful, a ConfigError naming the date
    (or, where `enforce` is off, a warning that OpenAI itself would refuse)."""
    passed = []
    if facts.last_new_job is not None and today > facts.last_new_job:
        passed.append(f"training.base_model: {vendor} has taken no new fine-tuning jobs since "
                      f"{facts.last_new_job} (catalog, as of {facts.as_of}); choose another provider")
    if facts.retires is not None and today >= facts.retires:
        instead = f" (OpenAI recommends {' or '.join(facts.replacement)})" if facts.replacement else ""
        passed.append(f"training.base_model: {facts.model_id} and its fine-tunes shut down on "
                      f"{facts.retires} (catalog, as of {facts.as_of}); choose another base model{instead}")
    if passed and enforce:
        raise ConfigError(passed[0])
    if passed:
        return [f"{p} (not refused: this endpoint is not {vendor}'s)" for p in passed]
    warnings = []
    if facts.last_new_job is not None:
        warnings.append(f"{vendor} takes no new fine-tuning jobs after {facts.last_new_job} "
                        f"({(facts.last_new_job - today).days} days from now)")
    if facts.retires is not None:
        warnings.append(f"{facts.model_id} and its fine-tunes shut down on {facts.retires} "
                        f"({(facts.retires - today).days} days from now): "
                        "the tuned model stops answering then")
    return warnings
