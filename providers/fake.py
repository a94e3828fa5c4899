"""A scripted, in-process provider for tests and dry runs (`provider: {name: fake}`).

Deterministic: a job walks through `states`, one per `get_job` call, then stays in the last one. Knobs
script the failures a pipeline must survive: refuse at create, N transient errors per method, end
FAILED, stall (RUNNING with no progress). Every call is recorded in `calls`. Inference uses the
imitation models: base models answer generically, a tuned model answers from its training data.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import ClassVar

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
from providers.errors import ConfigError, PermanentProviderError, TransientProviderError
from providers.imitation import BaseImitation, TunedImitation, count_tokens


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    states: list[JobState] = Field(
        default=[JobState.PENDING, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED],
        description="the state each successive get_job returns; the last one repeats")
    total_steps: int = Field(default=10, ge=1)
    fail_create: str | None = Field(default=None, description="create_job raises PermanentProviderError")
    transient_errors: dict[str, int] = Field(
        default_factory=dict, description="method name -> how many first calls raise TransientProviderError")
    end_failed: str | None = Field(default=None, description="the job ends FAILED with this message")
    stall: bool = Field(default=False, description="the job stays RUNNING at its first step forever")
    max_epochs: int = Field(default=50, ge=1, description="check_spec refuses more epochs than this")
    skilled: dict[str, str] = Field(
        default_factory=dict, description="model id -> chat JSONL file: that model (a newer base that "
                                          "already knows the task, or one tuned elsewhere) answers like a "
                                          "fine-tune on it")


class FakeProvider:
    name: ClassVar[str] = "fake"
    needs_credentials: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = FakeOptions

    def __init__(self, options: FakeOptions | None = None) -> None:
        self.options = options or FakeOptions()
        self.calls: list[tuple[str, tuple]] = []
        self._transient_left = dict(self.options.transient_errors)
        self._files: dict[str, list[str]] = {}
        self._jobs: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._tuned: dict[str, TunedImitation] = {}

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> FakeProvider:
        try:
            return cls(FakeOptions.model_validate(options))
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="fake provider", prefix="provider.options") from exc

    def _record(self, method: str, *args: object) -> None:
        self.calls.append((method, args))
        if self._transient_left.get(method, 0) > 0:
            self._transient_left[method] -= 1
            raise TransientProviderError(self.name, f"scripted transient error in {method}", status_code=503)

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        self._record("check_spec", spec)
        if spec.epochs is not None and spec.epochs > self.options.max_epochs:
            raise ConfigError(f"training.epochs: the fake provider allows 1 to {self.options.max_epochs}, "
                              f"got {spec.epochs}")
        return []

    def upload(self, data: PreparedDataset) -> DatasetRef:
        self._record("upload", data)
        train_id = f"fake-file-{next(self._ids)}"
        self._files[train_id] = data.train_path.read_text(encoding="utf-8").splitlines()
        return DatasetRef(provider=self.name, train_file_id=train_id, sha256=data.sha256)

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        self._record("create_job", spec, data, idempotency_key)
        if self.options.fail_create:
            raise PermanentProviderError(self.name, self.options.fail_create, status_code=400)
        job = JobRef(provider=self.name, job_id=f"fake-job-{next(self._ids)}",
                     idempotency_key=idempotency_key)
        self._jobs[job.job_id] = {"ref": job, "spec": spec, "data": data, "polls": 0, "cancelled": False,
                                "last": JobState.PENDING}
        return job

    def _job(self, job: JobRef) -> dict:
        if job.job_id not in self._jobs:
            raise PermanentProviderError(self.name, f"no job {job.job_id!r}", status_code=404)
        return self._jobs[job.job_id]

    def get_job(self, job: JobRef) -> JobStatus:
        self._record("get_job", job)
        record = self._job(job)
        status = self._observe(record)
        record["last"] = status.state
        return status

    def _observe(self, record: dict) -> JobStatus:
        script = self.options.states
        state = JobState.CANCELLED if record["cancelled"] else script[min(record["polls"], len(script) - 1)]
        record["polls"] += 1
        if self.options.stall and state not in (JobState.PENDING, JobState.CANCELLED):
            return self._status(record, JobState.RUNNING, step=1)
        if state is JobState.SUCCEEDED and self.options.end_failed:
            return self._status(record, JobState.FAILED, message=self.options.end_failed)
        step = {JobState.RUNNING: min(record["polls"], self.options.total_steps - 1),
                JobState.SUCCEEDED: self.options.total_steps}.get(state)
        return self._status(record, state, step=step)

    def _status(self, record: dict, state: JobState, *, step: int | None = None,
                message: str = "") -> JobStatus:
        ref, spec = record["ref"], record["spec"]
        model = None
        if state is JobState.SUCCEEDED:
            model = ModelRef(provider=self.name, model_id=f"fake:{spec.base_model}:{ref.job_id}",
                             base_model=spec.base_model, job_id=ref.job_id)
        metrics = {"train_loss": round(2.0 / (1 + step), 4)} if step else {}
        return JobStatus(job=ref, state=state, vendor_state=state.value, message=message, step=step,
                         total_steps=self.options.total_steps, metrics=metrics, model=model)

    def cancel(self, job: JobRef) -> None:
        self._record("cancel", job)
        record = self._job(job)
        if not record["last"].is_terminal:
            record["cancelled"] = True

    def find_job(self, idempotency_key: str) -> JobRef | None:
        self._record("find_job", idempotency_key)
        matches = [r["ref"] for r in self._jobs.values() if r["ref"].idempotency_key == idempotency_key]
        return matches[-1] if matches else None

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        self._record("infer", model, messages, params)
        text = self._imitation(model).reply(messages)
        return Completion(text=text, model_id=model.model_id, completion_tokens=count_tokens(text),
                          prompt_tokens=sum(count_tokens(str(m.get("content", ""))) for m in messages))

    def _imitation(self, model: ModelRef) -> BaseImitation | TunedImitation:
        if model.model_id in self.options.skilled and model.model_id not in self._tuned:
            path = Path(self.options.skilled[model.model_id])
            self._tuned[model.model_id] = TunedImitation.from_jsonl(
                path.read_text(encoding="utf-8").splitlines())
        if model.model_id in self._tuned:
            return self._tuned[model.model_id]
        if not model.is_tuned:
            return BaseImitation()
        if model.model_id not in self._tuned:
            data = self._jobs[model.job_id]["data"]
            self._tuned[model.model_id] = TunedImitation.from_jsonl(self._files[data.train_file_id])
        return self._tuned[model.model_id]
