"""Google Vertex AI Gemini supervised tuning through google-genai (`client.tunings`) and google-cloud-storage.

Flow: the prepared chat JSONL is converted to Gemini lines (providers.vertex.format) and uploaded once to
gs://<bucket>/<prefix>/<sha256>/ (`ifGenerationMatch=0`: an object already there is reused) ->
tunings.tune(epoch_count, learning_rate_multiplier, adapter_size, labels carrying the idempotency tag) ->
tunings.get (state, steps, tuning_data_stats) -> models.generate_content on `tuned_model.endpoint`.
Auth: Application Default Credentials; against the emulator a fixed bearer token (never a Google token call).
Quirks: google-genai retries nothing unless told, so every client gets HttpRetryOptions from the options
(never on create: a lost answer may have made a job, so find_job looks first); `vertexai.tuning` is
deprecated and not used; adapter size is Vertex's LoRA rank, alpha/dropout/modules are Vertex's choice.
Docs: https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-use-supervised-tuning
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from google import genai
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from google.genai import types
from pydantic import BaseModel, ValidationError

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
    UnexpectedProviderResponse,
)
from providers.vertex import format as vertex_format
from providers.vertex.client import NAME, VertexOptions, clients, resolved, translated

LABEL = "loraflow-key"
_V = types.JobState
STATES: dict[types.JobState, JobState] = {
    _V.JOB_STATE_QUEUED: JobState.PENDING,
    _V.JOB_STATE_PENDING: JobState.PENDING,
    _V.JOB_STATE_RUNNING: JobState.RUNNING,
    _V.JOB_STATE_UPDATING: JobState.RUNNING,  # a running job being updated returns to RUNNING
    # "stopped and can be resumed": not an end, the poller keeps watching
    _V.JOB_STATE_PAUSED: JobState.PAUSED,
    _V.JOB_STATE_CANCELLING: JobState.CANCELLING,
    _V.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    _V.JOB_STATE_PARTIALLY_SUCCEEDED: JobState.SUCCEEDED,  # only with a tuned endpoint; FAILED without one
    _V.JOB_STATE_FAILED: JobState.FAILED,
    _V.JOB_STATE_EXPIRED: JobState.FAILED,  # ran out of time at Vertex: ended, and nothing to use
    _V.JOB_STATE_CANCELLED: JobState.CANCELLED,
}
REFUSED_STATES = frozenset({_V.JOB_STATE_UNSPECIFIED})  # a job without a state is a response we do not know
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR",
                 8: "ADAPTER_SIZE_EIGHT", 16: "ADAPTER_SIZE_SIXTEEN", 32: "ADAPTER_SIZE_THIRTY_TWO"}
_HIDDEN_KNOBS = ("lora_alpha", "lora_dropout", "batch_size")
_INVALID_ARGUMENT = 3  # google.rpc.Code: the service blamed the request or its data


def idempotency_tag(key: str) -> str:
    """The label value standing for the idempotency key (Vertex labels: lowercase letters and digits)."""
    return "lf" + hashlib.sha256(key.encode()).hexdigest()[:30]


class VertexProvider:
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = VertexOptions

    def __init__(self, client: genai.Client, storage_client: storage.Client, options: VertexOptions) -> None:
        self.client = client
        self.storage = storage_client
        self.options = options
        self._gcs_retry: Retry = DEFAULT_RETRY.with_delay(
            initial=options.retry_initial_delay_s, maximum=max(options.retry_max_delay_s, 0.01),
        ).with_timeout(options.gcs_retry_timeout_s)

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> VertexProvider:
        try:
            opts = VertexOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="vertex provider",
                                              prefix="provider.options") from exc
        return cls(*clients(opts, base_url, api_key), resolved(opts, base_url))

    # -- before anything is uploaded -------------------------------------------------------------

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """Refuse what Vertex hides or does not allow; the adapter size must be one Vertex offers."""
        hidden = [k for k in _HIDDEN_KNOBS if getattr(spec, k) is not None]
        if spec.lora_target_modules not in (None, ["all-linear"]):
            hidden.append("lora_target_modules")
        if hidden:
            raise ConfigError(f"training.{hidden[0]}: Vertex exposes no LoRA alpha, dropout, target modules "
                              "or batch size for Gemini tuning (it chooses them; the adapter size is the "
                              "rank: training.lora_r or provider.options.adapter_size); remove "
                              + ", ".join(f"training.{k}" for k in hidden))
        if spec.learning_rate is not None:
            raise ConfigError("training.learning_rate: Vertex tunes Gemini with a multiplier of its own "
                              "default rate; set provider.options.learning_rate_multiplier instead")
        warnings_ = ["Vertex tuning takes no seed: training.seed is ignored"] if spec.seed is not None else []
        facts = model_facts(NAME, spec.base_model)
        if facts is None:
            self._adapter_size(spec, None)
            unchecked = (f"{spec.base_model} is not in the catalog of Vertex models: "
                         "its ranges are not checked")
            return [*warnings_, unchecked]
        retired = facts.retirement(datetime.now(UTC).date())
        if retired is not None:
            raise ConfigError(f"training.base_model: {retired} (catalog, as of {facts.as_of}); Vertex "
                              "refuses new tuning jobs on a retired model")
        check_training_knobs(facts.model_copy(update={"lora": None}),
                             spec.model_copy(update={"lora_r": None}), "Vertex")
        self._adapter_size(spec, facts)
        multiplier, allowed = self.options.learning_rate_multiplier, facts.learning_rate_multiplier
        if multiplier is not None and allowed is not None and not allowed.contains(multiplier):
            raise ConfigError("provider.options.learning_rate_multiplier: Vertex allows "
                              f"{allowed.describe()} for {facts.model_id}, got {multiplier:g} "
                              f"({facts.origin}, as of {facts.as_of})")
        if facts.confidence == "recalled":
            warnings_.append(f"Vertex limits for {spec.base_model} include recalled catalog facts (as of "
                             f"{facts.as_of}: {', '.join(facts.recalled)}); "
                             "Vertex checks them again at create")
        return warnings_

    def _adapter_size(self, spec: TrainingSpec, facts: ModelFacts | None) -> str | None:
        """The AdapterSize name for the rank asked for (training.lora_r or options.adapter_size), if any."""
        rank, chosen = spec.lora_r, self.options.adapter_size
        if rank is not None and chosen is not None and rank != chosen:
            raise ConfigError(f"training.lora_r: {rank} disagrees with provider.options.adapter_size "
                              f"{chosen}; set one of them")
        size = rank if rank is not None else chosen
        if size is None:
            return None
        largest = facts.lora.max_rank if facts is not None and facts.lora is not None else max(ADAPTER_SIZES)
        allowed = [s for s in ADAPTER_SIZES if s <= largest]
        if size not in allowed:
            where = f" for {facts.model_id} ({facts.origin}, as of {facts.as_of})" if facts else ""
            raise ConfigError(f"training.lora_r: Vertex adapter sizes{where} are "
                              f"{', '.join(map(str, allowed))}; got {size}")
        return ADAPTER_SIZES[size]

    # -- data ------------------------------------------------------------------------------------

    def upload(self, data: PreparedDataset) -> DatasetRef:
        folder = f"{self.options.gcs_prefix.strip('/')}/{data.sha256}".lstrip("/")
        train = self._upload_file(data.train_path, f"{folder}/train.jsonl")
        validation = None
        if data.eval_path is not None and data.eval_examples:
            validation = self._upload_file(data.eval_path, f"{folder}/validation.jsonl")
        return DatasetRef(provider=NAME, train_file_id=train, validation_file_id=validation,
                          sha256=data.sha256)

    def _upload_file(self, path: Path, name: str) -> str:
        """gs:// URI of the Gemini-format copy of `path`; an object already at `name` is the same content
        (the name carries the prepared data's sha256), so it is kept."""
        blob = self.storage.bucket(self.options.gcs_bucket).blob(name)
        with tempfile.TemporaryDirectory() as scratch:
            converted = Path(scratch) / "gemini.jsonl"
            with path.open(encoding="utf-8") as source, converted.open("w", encoding="utf-8") as target:
                for line in source:
                    if line.strip():
                        target.write(json.dumps(vertex_format.convert(json.loads(line)),
                                                ensure_ascii=False) + "\n")
            try:
                with translated():
                    # ifGenerationMatch=0 makes the upload idempotent, so the client may retry it
                    blob.upload_from_filename(str(converted), content_type="application/jsonl",
                                              if_generation_match=0, retry=self._gcs_retry,
                                              timeout=self.options.timeout_s)
            except PermanentProviderError as exc:
                if exc.status_code != 412:
                    raise
        return f"gs://{self.options.gcs_bucket}/{name}"

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        tag = idempotency_tag(idempotency_key)
        config = types.CreateTuningJobConfig(
            epoch_count=spec.epochs, learning_rate_multiplier=self.options.learning_rate_multiplier,
            adapter_size=self._adapter_size(spec, model_facts(NAME, spec.base_model)),
            tuned_model_display_name=f"{spec.suffix or 'loraflow'}-{tag}", labels={LABEL: tag},
            validation_dataset=(types.TuningValidationDataset(gcs_uri=data.validation_file_id)
                                if data.validation_file_id else None),
            # no retries: a create whose answer was lost may have made a job, so look before retrying
            http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1)))

        def create() -> JobRef:
            with translated(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tuning implementation is experimental")
                job = self.client.tunings.tune(
                    base_model=spec.base_model, config=config,
                    training_dataset=types.TuningDataset(gcs_uri=data.train_file_id))
            return JobRef(provider=NAME, job_id=job.name or "", idempotency_key=idempotency_key)

        ref = created_or_found(create, lambda: self.find_job(idempotency_key))
        if not ref.job_id:
            raise UnexpectedProviderResponse(NAME, "the created tuning job has no name")
        return ref

    def get_job(self, job: JobRef) -> JobStatus:
        with translated():
            remote = self.client.tunings.get(name=job.job_id)
        if remote.state not in STATES:
            raise UnexpectedProviderResponse(NAME, f"tuning job {job.job_id} has unknown state "
                                                   f"{remote.state!r}")
        vendor = str(remote.state.value)
        state, message = STATES[remote.state], remote.error.message if remote.error else ""
        endpoint = remote.tuned_model.endpoint if remote.tuned_model else None
        if state is JobState.SUCCEEDED and not endpoint:
            partial = remote.state is _V.JOB_STATE_PARTIALLY_SUCCEEDED
            state = JobState.FAILED if partial else JobState.RUNNING
            message = message or ("partially succeeded without a tuned endpoint" if partial
                                  else "succeeded; waiting for the tuned endpoint")
        elif remote.state is _V.JOB_STATE_EXPIRED:
            message = message or "the job expired at Vertex before it finished"
        model = None
        if state is JobState.SUCCEEDED:
            model = ModelRef(provider=NAME, model_id=endpoint, base_model=remote.base_model or "",
                             job_id=job.job_id)
        stats = _supervised_stats(remote)
        metadata = remote.tuning_job_metadata
        return JobStatus(
            job=job, state=state, vendor_state=vendor, message=message or _sub_state(remote),
            step=metadata.completed_step_count if metadata else None,
            total_steps=stats.tuning_step_count if stats else None, model=model,
            data_at_fault=bool(remote.error and remote.error.code == _INVALID_ARGUMENT),
            trained_tokens=stats.total_billable_token_count if stats and model else None)

    def tuning_data_stats(self, job: JobRef) -> dict[str, int]:
        """What Vertex counted in the training data (examples, billable tokens, steps, truncated examples);
        empty until Vertex has read the dataset (a method beyond the Provider protocol)."""
        with translated():
            stats = _supervised_stats(self.client.tunings.get(name=job.job_id))
        if stats is None:
            return {}
        fields = {"examples": stats.tuning_dataset_example_count,
                  "billable_tokens": stats.total_billable_token_count,
                  "steps": stats.tuning_step_count, "truncated_examples": stats.total_truncated_example_count,
                  "characters": stats.total_tuning_character_count}
        return {k: int(v) for k, v in fields.items() if v is not None}

    def cancel(self, job: JobRef) -> None:
        try:
            with translated():
                self.client.tunings.cancel(name=job.job_id)
        except PermanentProviderError:
            # Vertex refuses to cancel an ended job (FAILED_PRECONDITION): nothing left to stop
            if not self.get_job(job).state.is_terminal:
                raise

    def find_job(self, idempotency_key: str) -> JobRef | None:
        tag = idempotency_tag(idempotency_key)
        with translated():
            jobs = [j for j in self.client.tunings.list(config={"filter": f'labels.{LABEL}="{tag}"'})
                    if (j.labels or {}).get(LABEL) == tag and j.name]
        if not jobs:
            return None
        newest = max(jobs, key=lambda j: j.create_time.timestamp() if j.create_time else 0.0)
        return JobRef(provider=NAME, job_id=newest.name, idempotency_key=idempotency_key)

    # -- inference -------------------------------------------------------------------------------

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        request = vertex_format.convert({"messages": messages})
        config = types.GenerateContentConfig(
            temperature=params.temperature, top_p=params.top_p, max_output_tokens=params.max_tokens,
            seed=params.seed, stop_sequences=params.stop, system_instruction=request.get("systemInstruction"))
        started = time.perf_counter()
        with translated():
            response = self.client.models.generate_content(model=model.model_id, contents=request["contents"],
                                                           config=config)
            candidate = response.candidates[0]
            text = "".join(part.text or "" for part in (candidate.content.parts or []) if not part.thought)
            usage = response.usage_metadata
        reason = candidate.finish_reason.value if candidate.finish_reason else ""
        return Completion(text=text, model_id=model.model_id,
                          finish_reason=_FINISH.get(reason, reason.lower()),
                          prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
                          completion_tokens=(usage.candidates_token_count or 0) if usage else 0,
                          latency_ms=(time.perf_counter() - started) * 1000)


_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


def _supervised_stats(remote: types.TuningJob) -> types.SupervisedTuningDataStats | None:
    return remote.tuning_data_stats.supervised_tuning_data_stats if remote.tuning_data_stats else None


def _sub_state(remote: types.TuningJob) -> str:
    sub = remote.tuning_job_state
    if sub is None or sub is types.TuningJobState.TUNING_JOB_STATE_UNSPECIFIED:
        return ""
    return sub.value.removeprefix("TUNING_JOB_STATE_").replace("_", " ").lower()
