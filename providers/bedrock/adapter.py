"""AWS Bedrock model customization (fine-tuning) through boto3: S3 for data, `bedrock` for jobs,
`bedrock-runtime` converse for inference.

Flow: put the dataset into S3 in both of Bedrock's text formats (Converse for Nova, prompt/completion for
Llama; the job picks its family's) -> create_model_customization_job with the string hyperParameters map
checked against the family's ranges (catalog.yaml `families`), `clientRequestToken` = the
idempotency key and a job name derived from it -> get_model_customization_job (status + sub-status,
final losses, per-step metrics from the job's output CSV in S3) -> the custom model's ARN as the ModelRef
-> converse. Auth: the AWS credential chain (env, profile, role); `api_key` "ACCESS:SECRET" or one word
(an emulator) replaces it. `base_url` becomes the endpoint_url of all three clients (S3 path-style).
Quirks: Claude 3 Haiku reached end of life on 2026-09-10 in most regions and is refused; a tuned model
is invoked through a custom-model deployment (Nova, per token) or provisioned throughput (hourly), which
`serve` makes and `unserve` deletes (serving.py), unless `options.serving` maps the custom model ARN
to one you made. Bedrock has no seed and no LoRA knobs.
Docs: https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-submit.html
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

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
)
from providers.bedrock import metrics as bedrock_metrics
from providers.bedrock import serving as bedrock_serving
from providers.bedrock.client import NAME, BedrockOptions, clients, job_name, request_token, translated
from providers.bedrock.families import Family, hyperparameter_map, require_family
from providers.bedrock.format import CONVERSE, PROMPT_COMPLETION, converse_messages
from providers.catalog import check_training_knobs, model_facts
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

FORMATS = {"converse": CONVERSE, "prompt_completion": PROMPT_COMPLETION}

# ModelCustomizationJobStatus in botocore's service model
STATES: dict[str, JobState] = {
    "InProgress": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopping": JobState.CANCELLING,
    "Stopped": JobState.CANCELLED,
}
# JobStatusDetails of statusDetails.trainingDetails while the job is InProgress: validation and data
# processing come first, so training that has not started yet is still PENDING
TRAINING_PHASES: dict[str, JobState] = {
    "NotStarted": JobState.PENDING,
    "InProgress": JobState.RUNNING,
    "Completed": JobState.RUNNING,  # the custom model is still being written
    "Stopping": JobState.CANCELLING,
    "Stopped": JobState.CANCELLING,
    "Failed": JobState.RUNNING,  # the job status turns Failed on the next poll
}
_DATA_PHASES = ("validationDetails", "dataProcessingDetails")
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _model_name(suffix: str | None, idempotency_key: str) -> str:
    tag = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    stem = re.sub(r"[^0-9a-zA-Z]+", "-", suffix or "loraflow").strip("-")[:63 - len(tag) - 1] or "loraflow"
    return f"{stem}-{tag}"


class BedrockProvider:
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = BedrockOptions

    def __init__(self, s3: Any, bedrock: Any, runtime: Any, options: BedrockOptions) -> None:
        self.s3, self.bedrock, self.runtime = s3, bedrock, runtime
        self.options = options

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> BedrockProvider:
        try:
            opts = BedrockOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="bedrock provider",
                                              prefix="provider.options") from exc
        return cls(*clients(opts, base_url=base_url, api_key=api_key), opts)

    # -- before anything is uploaded -------------------------------------------------------------

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """ConfigError for an ended or unknown model, or a knob the family hides or holds out of range."""
        family = require_family(spec.base_model)
        self._hyperparameters(family, spec)
        facts = model_facts(NAME, spec.base_model)
        if facts is not None:
            check_training_knobs(facts, spec, "Bedrock")
        warnings = []
        if spec.seed is not None:
            warnings.append("Bedrock model customization takes no seed; training.seed is not sent")
        if facts is None:
            warnings.append(f"the catalog has no price for {spec.base_model}; the cost estimate "
                            "leaves it out")
        if self.options.region not in family.regions:
            warnings.append(f"Bedrock fine-tunes the {family.name} family in {', '.join(family.regions)}, "
                            f"not {self.options.region} (provider.options.region)")
        if not family.validation:
            warnings.append(f"the {family.name} family takes no validation set; the eval split is not sent")
        if family.recalled:
            warnings.append(f"the {family.name} ranges are assumed, not documented here; Bedrock checks "
                            "them at create")
        if not self.options.serving and self._serve_with(family) == "provisioned_throughput":
            warnings.append("the tuned model is served by provisioned throughput "
                            f"({self.options.model_units} model units), billed per hour from creation until "
                            "it is deleted; loraflow deletes it when the candidate is not accepted")
        return warnings

    def _serve_with(self, family: Family) -> str:
        """The serving the options ask for, refused where the family cannot have it (before any upload)."""
        chosen = self.options.serve_with or ("deployment" if family.on_demand_deployment else None)
        if chosen is None:
            raise ConfigError(f"provider.options.serve_with: Bedrock serves {family.name} custom models only "
                              "through provisioned throughput, billed per model unit per hour until deleted; "
                              "set serve_with: provisioned_throughput and model_units, or map the model to a "
                              "serving ARN you made in provider.options.serving")
        if chosen == "deployment" and not family.on_demand_deployment:
            raise ConfigError("provider.options.serve_with: on-demand deployment is not offered for "
                              f"{family.name} custom models; allowed values: provisioned_throughput")
        if chosen == "provisioned_throughput" and self.options.model_units is None:
            raise ConfigError("provider.options.model_units: provisioned throughput needs a number of "
                              "model units")
        return chosen

    def _hyperparameters(self, family: Family, spec: TrainingSpec) -> dict[str, str]:
        lora = [k for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
                if getattr(spec, k) is not None]
        if lora:
            raise ConfigError(f"training.{lora[0]}: Bedrock exposes no LoRA rank, alpha, dropout or target "
                              f"modules; remove {', '.join('training.' + k for k in lora)}")
        settings = {"epochs": spec.epochs, "learning_rate": spec.learning_rate, "batch_size": spec.batch_size,
                    "warmup_steps": self.options.warmup_steps}
        return hyperparameter_map(family, settings)

    # -- data ------------------------------------------------------------------------------------

    def upload(self, data: PreparedDataset) -> DatasetRef:
        """Put the data in S3 once per text format, under a key made from its sha256 (so a second upload of
        the same data overwrites identical objects). The refs are the stems `<s3 uri>/train` and
        `/validation`; create_job adds `-<format>.jsonl` for the base model's family."""
        stem = f"{self.options.prefix.strip('/')}/datasets/{data.sha256[:16]}"
        splits = [("train", data.train_path)]
        if data.eval_path is not None and data.eval_examples:
            splits.append(("validation", data.eval_path))
        for split, path in splits:
            for format_name, target in FORMATS.items():
                body = "".join(json.dumps(target.convert(example)) + "\n" for example in _examples(path))
                with translated():
                    self.s3.put_object(Bucket=self.options.bucket, Key=f"{stem}/{split}-{format_name}.jsonl",
                                       Body=body.encode("utf-8"), ContentType="application/jsonl")
        uri = f"s3://{self.options.bucket}/{stem}"
        return DatasetRef(provider=NAME, train_file_id=f"{uri}/train", sha256=data.sha256,
                          validation_file_id=f"{uri}/validation" if len(splits) > 1 else None)

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        family = require_family(spec.base_model)
        name, prefix = job_name(idempotency_key), self.options.prefix.strip("/")
        request: dict[str, Any] = {
            "jobName": name, "customModelName": _model_name(spec.suffix, idempotency_key),
            "roleArn": self.options.role_arn, "baseModelIdentifier": spec.base_model,
            "customizationType": "FINE_TUNING", "clientRequestToken": request_token(idempotency_key),
            "trainingDataConfig": {"s3Uri": f"{data.train_file_id}-{family.format}.jsonl"},
            "outputDataConfig": {"s3Uri": f"s3://{self.options.bucket}/{prefix}/output/{name}/"},
            "hyperParameters": self._hyperparameters(family, spec),
        }
        if data.validation_file_id and family.validation:
            validation = f"{data.validation_file_id}-{family.format}.jsonl"
            request["validationDataConfig"] = {"validators": [{"s3Uri": validation}]}
        try:
            with translated():
                self.bedrock.create_model_customization_job(**request)
        except (TransientProviderError, UnexpectedProviderResponse, PermanentProviderError) as exc:
            # the answer may have been lost, or an earlier try made the job (a name conflict is a 400)
            if isinstance(exc, PermanentProviderError) and exc.status_code not in (400, 409):
                raise
            found = self._found_after(exc, idempotency_key)
            if found is None:
                raise
            return found
        return JobRef(provider=NAME, job_id=name, idempotency_key=idempotency_key)

    def _found_after(self, failure: Exception, idempotency_key: str) -> JobRef | None:
        try:
            return self.find_job(idempotency_key)
        except (TransientProviderError, PermanentProviderError) as exc:
            raise failure from exc

    def get_job(self, job: JobRef) -> JobStatus:
        with translated():
            remote = self.bedrock.get_model_customization_job(jobIdentifier=job.job_id)
        if "status" not in remote:  # botocore turns a torn JSON body into an answer without members
            raise TransientProviderError(NAME, f"job {job.job_id}: an answer without a status (a torn body)")
        vendor = str(remote["status"])
        state, details = STATES.get(vendor), remote.get("statusDetails") or {}
        if state is None:
            raise UnexpectedProviderResponse(NAME, f"job {job.job_id} has unknown status {vendor!r}")
        if state is JobState.RUNNING and details:
            training = (details.get("trainingDetails") or {}).get("status", "NotStarted")
            state = TRAINING_PHASES.get(training)
            if state is None:
                raise UnexpectedProviderResponse(NAME,
                                                 f"job {job.job_id}: unknown training status {training!r}")
        data_at_fault = state is JobState.FAILED and any(
            (details.get(phase) or {}).get("status") == "Failed" for phase in _DATA_PHASES)
        observed = state in (JobState.RUNNING, JobState.SUCCEEDED)
        step, metrics = (self._step_metrics(remote, ended=state is JobState.SUCCEEDED) if observed
                         else (None, {}))
        metrics.update(bedrock_metrics.final_losses(remote))
        ended = state in (JobState.FAILED, JobState.CANCELLED)
        message = str(remote.get("failureMessage") or "") if ended else ""
        model = None
        if state is JobState.SUCCEEDED and remote.get("outputModelArn"):
            model = ModelRef(provider=NAME, model_id=remote["outputModelArn"], job_id=job.job_id,
                             base_model=str(remote.get("baseModelArn", "")).rsplit("/", 1)[-1])
        elif state is JobState.SUCCEEDED:
            state, message = JobState.RUNNING, "completed; waiting for the custom model ARN"
        return JobStatus(job=job, state=state, vendor_state=vendor, message=message,
                         data_at_fault=data_at_fault, step=step, metrics=metrics, model=model)

    def _step_metrics(self, remote: dict[str, Any], *, ended: bool) -> tuple[int | None, dict[str, float]]:
        """The last row of the job's training metrics CSV in S3, and of its validation CSV once the job has
        ended (Bedrock validates after training)."""
        artifacts = [bedrock_metrics.TRAINING_CSV] + ([bedrock_metrics.VALIDATION_CSV] if ended else [])
        step, metrics = None, {}
        with translated():
            for artifact in artifacts:
                rows = bedrock_metrics.read_rows(self.s3, remote, artifact, NAME)
                if rows:
                    metrics.update({k: v for k, v in rows[-1].items() if k.endswith("_loss")})
                    step = int(rows[-1]["step"]) if artifact == bedrock_metrics.TRAINING_CSV else step
        return step, metrics

    def loss_curve(self, job: JobRef) -> list[dict[str, float]]:
        """Rows of step, epoch, train_loss and valid_loss from the job's metrics CSVs (a method beyond the
        Provider protocol); empty until the job has written them."""
        with translated():
            remote = self.bedrock.get_model_customization_job(jobIdentifier=job.job_id)
            return bedrock_metrics.loss_curve(self.s3, remote, NAME)

    def cancel(self, job: JobRef) -> None:
        try:
            with translated():
                self.bedrock.stop_model_customization_job(jobIdentifier=job.job_id)
        except PermanentProviderError:
            # Bedrock refuses to stop a job that ended or is already stopping: nothing left to do
            state = self.get_job(job).state
            if not (state.is_terminal or state is JobState.CANCELLING):
                raise

    def find_job(self, idempotency_key: str) -> JobRef | None:
        try:
            with translated():
                remote = self.bedrock.get_model_customization_job(jobIdentifier=job_name(idempotency_key))
        except PermanentProviderError as exc:
            if exc.status_code == 404:
                return None
            raise
        if not remote.get("jobName"):  # a reply cut short (a dropped connection): ask again, never guess
            raise TransientProviderError(NAME, "GetModelCustomizationJob answered without a jobName")
        return JobRef(provider=NAME, job_id=str(remote["jobName"]), idempotency_key=idempotency_key)

    # -- serving ---------------------------------------------------------------------------------

    def serve(self, model: ModelRef, *, name: str) -> ModelRef:
        """The ModelRef to infer with: the ARN mapped in `options.serving`, else a deployment or provisioned
        throughput made (or found) under `name`. The latter bills until `unserve`."""
        if model.model_id in self.options.serving:
            return model.model_copy(update={"model_id": self.options.serving[model.model_id]})
        units = None
        if self._serve_with(require_family(model.base_model)) == "provisioned_throughput":
            units = self.options.model_units
        return bedrock_serving.deploy(self.bedrock, model, name=name, model_units=units,
                                      wait_s=self.options.serve_wait_s, poll_s=self.options.serve_poll_s)

    def unserve(self, served: ModelRef) -> None:
        """Delete what `serve` made (stops its billing); a serving named in `options.serving` is left
        alone."""
        if served.model_id in self.options.serving.values() or ":custom-model/" in served.model_id:
            return
        bedrock_serving.undeploy(self.bedrock, served.model_id)

    # -- inference -------------------------------------------------------------------------------

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        """One converse call; a tuned model goes through the ARN `options.serving` maps it to, if any."""
        system, turns = converse_messages(messages)
        config: dict[str, Any] = {"maxTokens": params.max_tokens, "temperature": params.temperature,
                                  "topP": params.top_p}
        if params.stop:
            config["stopSequences"] = params.stop
        request: dict[str, Any] = {"modelId": self.options.serving.get(model.model_id, model.model_id),
                                   "messages": turns, "inferenceConfig": config}
        if system:
            request["system"] = [{"text": text} for text in system]
        started = time.perf_counter()
        with translated():
            response = self.runtime.converse(**request)
            if "output" not in response:
                raise TransientProviderError(NAME, "converse answer without output (torn or empty body)")
            text = "".join(block.get("text", "") for block in response["output"]["message"]["content"])
            usage = response.get("usage") or {}
            reason = str(response.get("stopReason") or "")
        return Completion(text=text, model_id=model.model_id, finish_reason=_FINISH.get(reason, reason),
                          prompt_tokens=usage.get("inputTokens", 0),
                          completion_tokens=usage.get("outputTokens", 0),
                          latency_ms=(time.perf_counter() - started) * 1000)


def _examples(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
