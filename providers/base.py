"""The provider seam: one Protocol, one JobState vocabulary, and the small value types they exchange.

Every provider (OpenAI, Together, Bedrock, Vertex, local, the fake) implements `Provider`. The values
are frozen pydantic models so they serialise into the manifest and the registry unchanged. Vendor
words stay inside each provider module; nothing here names a vendor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from providers.errors import TransientProviderError, UnexpectedProviderResponse

Message = dict[str, Any]
"""A chat message in the OpenAI shape: {"role": ..., "content": ...} plus optional tool fields."""


class JobState(StrEnum):
    """The lifecycle of a training job, the same words for every provider."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreparedDataset(_Value):
    """Validated, split chat JSONL on local disk, ready for a provider to convert and upload."""

    train_path: Path
    eval_path: Path | None = None
    sha256: str = Field(description="sha256 over the prepared train and eval files; keys uploads and jobs")
    train_examples: int
    eval_examples: int = 0
    train_tokens: int | None = Field(default=None, description="billable tokens of one pass over train_path, "
                                                               "counted with the target model's tokenizer")


class DatasetRef(_Value):
    """Where a provider holds an uploaded dataset."""

    provider: str
    train_file_id: str
    validation_file_id: str | None = None
    sha256: str


class JobRef(_Value):
    provider: str
    job_id: str
    idempotency_key: str = ""


class ModelRef(_Value):
    """A model a provider can run inference on: a base model, or the result of a job."""

    provider: str
    model_id: str
    base_model: str
    job_id: str | None = None

    @property
    def is_tuned(self) -> bool:
        return self.job_id is not None


class JobStatus(_Value):
    """One observation of a job. `model` is set once the job SUCCEEDED and the provider knows it."""

    job: JobRef
    state: JobState
    vendor_state: str = Field(description="the provider's own word, for debugging only")
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    model: ModelRef | None = None
    data_at_fault: bool = False
    trained_tokens: int | None = None
    estimated_finish: datetime | None = None


class TrainingSpec(_Value):
    """The portable training knobs. Provider-only knobs live in each provider's `Options` model.

    None means "the provider's default". A provider that cannot honour a knob says so in `check_spec`.
    """

    base_model: str = Field(min_length=1)
    epochs: int | None = Field(default=None, ge=1, le=100)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    lora_r: int | None = Field(default=None, ge=1, le=1024)
    lora_alpha: int | None = Field(default=None, ge=1, le=4096)
    lora_dropout: float | None = Field(default=None, ge=0, lt=1)
    lora_target_modules: list[str] | None = None
    seed: int | None = Field(default=None, ge=0)
    suffix: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Decoding(_Value):
    """Sampling settings. Evaluation uses the same Decoding for the base and the candidate."""

    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = 0
    stop: list[str] | None = None
    # left out of dumps when unset, so answer-cache keys made before it existed stay valid
    json_schema: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda schema: schema is None,
        description="constrain answers to this JSON Schema where the serving side supports it (OpenAI "
                    "structured outputs, vLLM guided decoding); a provider without it answers unconstrained")


class Completion(_Value):
    text: str
    model_id: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat messages: every Provider, and chat-only services used as judges or
    teachers."""

    name: ClassVar[str]

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        """One chat completion from a base or tuned model."""
        ...


@runtime_checkable
class Provider(ChatModel, Protocol):
    """What loraflow needs from a place that trains and serves LoRA fine-tunes.

    Every method is synchronous. Errors are raised from the tree in `providers.errors`:
    TransientProviderError for anything worth retrying, PermanentProviderError for refusals,
    UnexpectedProviderResponse for a status or shape the adapter does not know. A provider that needs no
    account (it runs on this machine) sets the class attribute `needs_credentials = False`.
    """

    name: ClassVar[str]

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """Validate the spec against what this provider supports, before anything is uploaded.

        Raises ConfigError naming the knob and the allowed range (or that the provider hides the knob).
        Returns warnings a person should see (a retirement date, a knob rounded by the provider).
        """
        ...

    def upload(self, data: PreparedDataset) -> DatasetRef:
        """Convert the prepared chat JSONL to the vendor's format, upload it, and wait until the
        provider has accepted it. Callers record uploads by `data.sha256`; where the vendor lists files, the
        adapter also reuses a file it uploaded earlier with the same content (a crash before the record)."""
        ...

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        """Start a training job. The key is stored with the job on the provider side (metadata, a
        client token, a name) so that `find_job` can recover it after a crash."""
        ...

    def get_job(self, job: JobRef) -> JobStatus:
        """Observe the job. Every vendor state maps to a JobState; an unknown one raises
        UnexpectedProviderResponse. Progress and metrics are filled where the provider reports them."""
        ...

    def cancel(self, job: JobRef) -> None:
        """Ask the provider to stop the job. Cancelling a job that already ended is a no-op."""
        ...

    def find_job(self, idempotency_key: str) -> JobRef | None:
        """The job created earlier with this key, or None. Asked before every create (tasks/training/
        submit.py): the provider, not the local registry, is the source of truth for what exists there."""
        ...

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        """One chat completion from a base or tuned model."""
        ...


@runtime_checkable
class ServesModels(Protocol):
    """A provider whose tuned models answer only once something serves them (Bedrock: a custom-model
    deployment or provisioned throughput). Providers that serve a tuned model by its id do not have this."""

    def serve(self, model: ModelRef, *, name: str) -> ModelRef:
        """The ModelRef to infer with; made (or found) under `name`, so a re-run does not make a second one.
        It may bill until `unserve`: the adapter's check_spec warns about that before anything is uploaded."""
        ...

    def unserve(self, served: ModelRef) -> None:
        """Delete what `serve` made (a no-op when it is gone or was made by someone else)."""
        ...


@runtime_checkable
class LossCurveSource(Protocol):
    """A provider that can hand back a finished job's whole loss curve; others report only the last
    metrics."""

    def loss_curve(self, job: JobRef) -> list[dict[str, float]]:
        """Rows of step, train_loss and (where the job had a validation set) valid_loss, in step order."""
        ...


@runtime_checkable
class KeepsTrainedFiles(Protocol):
    """A provider whose trained output is files on this machine (the local trainer's adapter), which a run
    kept in an object store copies there, so that a run trained on one worker can be served from another."""

    def trained_files(self, job: JobRef) -> dict[str, Path]:
        """What serving the job's model needs, by the name it goes under: files or folders on this disk."""
        ...


@runtime_checkable
class ReportsTemplateParity(Protocol):
    """A provider that can say whether the prompts its serving side builds match the tokens a job trained on
    (the local trainer checks after training); hosted providers render their own templates and do not."""

    def template_parity(self, job: JobRef) -> dict[str, Any] | None:
        """`ok`, the rows checked, the rows whose prompt or stop token differs, and `problems` in words."""
        ...


def created_or_found(create: Callable[[], JobRef], find: Callable[[], JobRef | None]) -> JobRef:
    """Send a create whose answer may be lost (adapters send it without SDK retries). On a transient
    failure or an answer not understood the job may exist all the same: return what `find` recovers by
    the idempotency key, else re-raise, so the caller's retry sends the create again."""
    try:
        return create()
    except (TransientProviderError, UnexpectedProviderResponse):
        found = find()
        if found is None:
            raise
        return found
