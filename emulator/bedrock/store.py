"""What the emulator keeps for the Bedrock API: S3 objects, model-customization jobs, and their custom models.

Objects are whole PUTs keyed by (bucket, key); their bytes go to the state's storage under a name made
from that pair. A job follows a `Timeline` like the other APIs' jobs; its training data is checked when
it is created (a line that is not the family's format makes the job fail in validation, blaming the
data, as Bedrock does asynchronously). A create that repeats a job's `clientRequestToken` returns that
job. A job's step metrics appear as the CSV Bedrock writes under its output prefix. The store hangs off
an `EmulatorState` (`bedrock_store(state)`) and runs every method under the state's lock; with a
state_dir it is saved as `bedrock.json` beside the state's own snapshot.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from emulator.timeline import Progress, Timeline, progress
from providers.bedrock.families import Family, require_family
from providers.errors import ConfigError
from providers.imitation import BaseImitation, TunedImitation

if TYPE_CHECKING:
    from emulator.state import EmulatorState, Imitation

ACCOUNT = "123456789012"
STOPPING_S = 0.1  # how long a stopped job reports Stopping before Stopped
METRICS_CSV = "training_artifacts/step_wise_training_metrics.csv"
VALIDATION_CSV = "validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"


def validation_loss(train_loss: float) -> float:
    """What the emulator reports as a job's final validation loss: a little above its last training loss."""
    return round(train_loss + 0.05, 4)


class BedrockError(Exception):
    """A refused request, rendered the AWS way: `x-amzn-ErrorType` plus `{"message"}` (XML for S3)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class BedrockJob:
    name: str
    arn: str
    model_arn: str
    region: str
    created_at: float
    request: dict[str, Any]  # the create body as sent
    timeline: Timeline
    stopped_at: float | None = None

    def progress(self, now: float) -> Progress:
        return progress(self.timeline, self.created_at, now, cancelled_at=self.stopped_at)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timeline": self.timeline.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BedrockJob:
        return cls(**{**data, "timeline": Timeline.from_dict(data["timeline"])})


def bedrock_store(state: EmulatorState) -> BedrockStore:
    """The Bedrock store of `state`, made (and given what bedrock.json holds) on first use."""
    return state.store("bedrock", BedrockStore, file="bedrock.json")


class BedrockStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._objects: dict[str, str] = {}  # "bucket/key" -> blob name
        self._jobs: dict[str, BedrockJob] = {}  # by name
        self._servings: dict[str, dict[str, Any]] = {}  # by ARN: deployments and provisioned throughput

    # -- S3 --------------------------------------------------------------------------------------

    def put_object(self, bucket: str, key: str, content: bytes) -> str:
        """Store the object; returns its ETag."""
        with self.state.lock:
            blob = "s3-" + hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:40]
            self.state.storage.write_blob(blob, content)
            if f"{bucket}/{key}" not in self._objects:
                self.state.count("files_created")
            self._objects[f"{bucket}/{key}"] = blob
            self.state.save()
            return hashlib.md5(content).hexdigest()  # S3 answers a single PUT with the MD5 as ETag

    def get_object(self, bucket: str, key: str) -> bytes:
        with self.state.lock:
            blob = self._objects.get(f"{bucket}/{key}")
            if blob is not None:
                return self.state.storage.read_blob(blob)
            metrics = self._metrics_csv(f"s3://{bucket}/{key}")
            if metrics is None:
                raise BedrockError(404, "NoSuchKey", "The specified key does not exist.")
            return metrics

    def _object_at(self, uri: str) -> bytes | None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        blob = self._objects.get(f"{bucket}/{key}")
        return None if blob is None else self.state.storage.read_blob(blob)

    # -- jobs ------------------------------------------------------------------------------------

    def create_job(self, request: dict[str, Any], region: str) -> BedrockJob:
        """The job for a validated create body; the earlier job when the clientRequestToken repeats."""
        with self.state.lock:
            token = request.get("clientRequestToken")
            for job in self._jobs.values():
                if token and job.request.get("clientRequestToken") == token:
                    return job
            if request["jobName"] in self._jobs:
                raise BedrockError(400, "ConflictException", f"A model customization job named "
                                   f"{request['jobName']} already exists.")
            family = _family(request["baseModelIdentifier"])
            _check_hyperparameters(family, request.get("hyperParameters") or {})
            timeline = self.state.timeline
            problem = self._data_problem(request, family)
            if problem is not None:
                timeline = replace(timeline, fail_at_step=0, fail_code="invalid_training_file",
                                   fail_message=problem)
            digest = hashlib.sha256(request["jobName"].encode()).hexdigest()
            short = "".join(c for c in digest if c.isalpha())[:4] + digest[:8]
            base = request["baseModelIdentifier"]
            job = BedrockJob(
                name=request["jobName"], region=region, created_at=self.state.now(), request=request,
                timeline=timeline,
                arn=f"arn:aws:bedrock:{region}:{ACCOUNT}:model-customization-job/{base}/{short}",
                model_arn=f"arn:aws:bedrock:{region}:{ACCOUNT}:custom-model/{base}/{digest[-12:]}")
            self._jobs[job.name] = job
            self.state.count("jobs_created")
            self.state.save()
            return job

    def job(self, identifier: str) -> BedrockJob:
        with self.state.lock:
            for job in self._jobs.values():
                if identifier in (job.name, job.arn):
                    return job
        raise BedrockError(404, "ResourceNotFoundException",
                           f"Could not find model customization job {identifier}.")

    def list_jobs(self) -> list[BedrockJob]:
        """Newest first."""
        with self.state.lock:
            return sorted(self._jobs.values(), key=lambda job: job.created_at, reverse=True)

    def stop(self, identifier: str) -> None:
        with self.state.lock:
            job, now = self.job(identifier), self.state.now()
            if job.stopped_at is not None or job.progress(now).status in ("succeeded", "failed"):
                raise BedrockError(400, "ValidationException",
                                   f"Job {job.name} is not in progress and cannot be stopped.")
            job.stopped_at = now
            self.state.count("jobs_cancelled")
            self.state.save()

    def custom_model(self, identifier: str) -> BedrockJob:
        """The completed job whose custom model this ARN (or name) is."""
        with self.state.lock:
            for job in self._jobs.values():
                if identifier in (job.model_arn, job.request["customModelName"]) \
                        and job.progress(self.state.now()).status == "succeeded":
                    return job
        raise BedrockError(404, "ResourceNotFoundException", f"Could not find custom model {identifier}.")

    # -- serving ---------------------------------------------------------------------------------

    def create_serving(self, kind: str, name: str, model_id: str, token: str | None, units: int = 0) -> dict:
        """A deployment ("custom-model-deployment") or provisioned throughput ("provisioned-model") of a
        custom model; the same one again for a repeated client token."""
        with self.state.lock:
            for serving in self._servings.values():
                if token and serving["token"] == token:
                    return serving
            job = self.custom_model(model_id)
            nova = job.request["baseModelIdentifier"].startswith("amazon.nova")
            if kind == "custom-model-deployment" and not nova:
                raise BedrockError(400, "ValidationException", "On-demand deployment supports Nova custom "
                                   "models only; buy provisioned throughput for this one.")
            digest = hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:12]
            serving = {"arn": f"arn:aws:bedrock:{job.region}:{ACCOUNT}:{kind}/{digest}", "kind": kind,
                       "name": name, "model_arn": job.model_arn, "token": token, "units": units,
                       "created_at": self.state.now()}
            self._servings[serving["arn"]] = serving
            self.state.save()
            return serving

    def serving(self, identifier: str, kind: str) -> tuple[dict[str, Any], bool]:
        """The serving under this ARN (or name) and whether it is ready (after the timeline's queue time)."""
        with self.state.lock:
            for serving in self._servings.values():
                if identifier in (serving["arn"], serving["name"]) and serving["kind"] == kind:
                    timeline = self.state.timeline
                    ready_at = serving["created_at"] + timeline.queued_s / timeline.speed
                    return serving, self.state.now() >= ready_at
        raise BedrockError(404, "ResourceNotFoundException", f"Could not find {identifier}.")

    def delete_serving(self, identifier: str, kind: str) -> None:
        with self.state.lock:
            serving, _ = self.serving(identifier, kind)
            del self._servings[serving["arn"]]
            self.state.save()

    # -- inference -------------------------------------------------------------------------------

    def imitation(self, model_id: str) -> Imitation:
        """The stand-in for a model id: a served custom model of a completed job, else any foundation model.
        Like Bedrock, a custom model is not invoked by its own ARN: only through what serves it."""
        served = False
        for kind in (":custom-model-deployment/", ":provisioned-model/"):
            if kind in model_id:
                serving, ready = self.serving(model_id, kind.strip(":/"))
                if not ready:
                    raise BedrockError(400, "ValidationException", f"{model_id} is not ready to serve yet.")
                model_id, served = serving["model_arn"], True
        if ":custom-model/" not in model_id:
            return BaseImitation()
        if not served:
            raise BedrockError(400, "ValidationException", f"Invocation of model ID {model_id} with "
                               "on-demand throughput isn't supported. Serve it through a custom model "
                               "deployment or provisioned throughput and use that ARN.")
        return self.state.imitation("bedrock", model_id, lambda: self._tuned(model_id))

    def _tuned(self, model_id: str) -> TunedImitation:
        job = self.custom_model(model_id)
        content = self._object_at(job.request["trainingDataConfig"]["s3Uri"]) or b""
        lines = [json.dumps(_chat(json.loads(line)))
                 for line in content.decode().splitlines() if line.strip()]
        return TunedImitation.from_jsonl(lines)

    # -- internals -------------------------------------------------------------------------------

    def _data_problem(self, request: dict[str, Any], family: Family) -> str | None:
        uris = [request["trainingDataConfig"]["s3Uri"]]
        validators = (request.get("validationDataConfig") or {}).get("validators", [])
        uris += [v.get("s3Uri", "") for v in validators]
        for uri in uris:
            content = self._object_at(uri)
            if content is None:
                raise BedrockError(400, "ValidationException", f"Cannot access the S3 object {uri}: it "
                                   "does not exist or the role cannot read it.")
            for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
                if line.strip() and not _fits(line, family.format):
                    return f"Validation failed: line {number} of {uri} is not in the {family.format} format."
        return None

    def _metrics_csv(self, uri: str) -> bytes | None:
        """The step-wise training CSV while a job trains, and the validation CSV once it completed with a
        validation set (written by the job, so never stored: they follow its timeline)."""
        for job in self._jobs.values():
            folder = f"{job.request['outputDataConfig']['s3Uri'].rstrip('/')}/model-customization-job-" \
                     f"{job.arn.rsplit('/', 1)[-1]}"
            if uri not in (f"{folder}/{METRICS_CSV}", f"{folder}/{VALIDATION_CSV}"):
                continue
            progress = job.progress(self.state.now())
            rows = [e.data for e in progress.events if e.type == "metrics" and e.data]
            steps_per_epoch = max(1, job.timeline.steps // int(job.request.get("hyperParameters", {})
                                                                 .get("epochCount", "1")))
            if uri.endswith(METRICS_CSV):
                if not rows:
                    return None
                lines = ["step_number,epoch_number,training_loss,perplexity"]
                lines += [f"{r['step']},{(r['step'] - 1) // steps_per_epoch},{r['train_loss']},"
                          f"{math.exp(r['train_loss']):.4f}" for r in rows]
                return ("\n".join(lines) + "\n").encode()
            validators = (job.request.get("validationDataConfig") or {}).get("validators")
            if progress.status != "succeeded" or not rows or not validators:
                return None
            last, loss = rows[-1], validation_loss(rows[-1]["train_loss"])
            return (f"step_number,epoch_number,validation_loss,perplexity\n{last['step']},"
                    f"{(last['step'] - 1) // steps_per_epoch},{loss},{math.exp(loss):.4f}\n").encode()
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"objects": self._objects, "servings": self._servings,
                "jobs": [job.to_dict() for job in self._jobs.values()]}

    def load(self, section: dict[str, Any] | None) -> None:
        section = section or {"objects": {}, "jobs": []}
        self._objects, self._servings = section["objects"], section.get("servings", {})
        self._jobs = {j["name"]: BedrockJob.from_dict(j) for j in section["jobs"]}


def _family(model: str) -> Family:
    try:
        return require_family(model)
    except ConfigError as exc:
        message = str(exc).split(": ", 1)[-1]
        if "end of life" in message:
            raise BedrockError(404, "ResourceNotFoundException",
                               "This model version has reached the end of its life.") from exc
        raise BedrockError(400, "ValidationException",
                           f"The provided model identifier is invalid: {model}") from exc


def _check_hyperparameters(family: Family, given: dict[str, str]) -> None:
    for key, value in given.items():
        parameter = family.hyperparameters.get(key)
        if parameter is None:
            raise BedrockError(400, "ValidationException", f"Hyperparameter {key} is not supported for "
                               f"{family.name}; supported: {', '.join(family.hyperparameters)}.")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not parameter.allowed.contains(number) or (parameter.integer and number != int(number)):
            raise BedrockError(400, "ValidationException", f"Hyperparameter {key}={value} is out of range: "
                               f"{parameter.allowed.describe()}.")


def _fits(line: str, data_format: str) -> bool:
    try:
        example = json.loads(line)
    except json.JSONDecodeError:
        return False
    if not isinstance(example, dict):
        return False
    if data_format == "prompt_completion":
        return isinstance(example.get("prompt"), str) and isinstance(example.get("completion"), str)
    messages = example.get("messages")
    return isinstance(messages, list) and bool(messages) and all(
        isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)


def _chat(example: dict[str, Any]) -> dict[str, Any]:
    """A Converse or prompt/completion line as OpenAI-shape chat, for the tuned imitation."""
    if "prompt" in example:
        return {"messages": [{"role": "user", "content": example["prompt"]},
                             {"role": "assistant", "content": example["completion"]}]}
    system = [{"role": "system", "content": " ".join(b.get("text", "") for b in example.get("system") or [])}]
    turns = [{"role": m["role"], "content": "".join(b.get("text", "") for b in m["content"])}
             for m in example["messages"]]
    return {"messages": (system if example.get("system") else []) + turns}
