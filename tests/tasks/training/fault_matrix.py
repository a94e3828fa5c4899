"""The fault matrix: every injected fault on every pipeline stage, for each hosted provider on the emulator.

A case runs the pipeline's own task functions (upload_dataset, submit_job, JobWatcher with poll_job, the
evaluation's `answer`) against the loopback emulator with one fault rule on the route of one stage. The
rule fires three times in a row, more than the SDK's own two retries, so the retry loop standing in for
Prefect's task retries (PROVIDER_CALL: 4 retries, transient errors only) has to act as well. Backoff is
shrunk, never the retry decisions: the SDK clients only override how long they sleep.

A case passes when the run completed, or failed with the error class the fault calls for, and the
emulator created exactly one job, whose id the registry holds (or `find_job` recovers from its intent).
A fault that lets the work through (served drop, timeout, malformed) may fire fewer than three times: the
retry finds the job by its key, or the upload by its content (Together's 409), and asks no more.

    python -m tests.tasks.training.fault_matrix      # prints the table (about a minute)
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import together

from emulator import EmulatorServer, FaultRule, Timeline
from providers.azure_openai.adapter import AzureOpenAIProvider
from providers.base import Decoding, JobStatus, PreparedDataset, Provider, ServesModels, TrainingSpec
from providers.bedrock.adapter import BedrockProvider
from providers.errors import LoraflowError, TransientProviderError
from providers.openai.adapter import OpenAIOptions, OpenAIProvider
from providers.together.adapter import TogetherOptions, TogetherProvider
from providers.vertex.adapter import VertexProvider
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.items import EvalItem
from tasks.evaluation.runner import answer
from tasks.registry import Registry
from tasks.training.polling import PollConfig
from tasks.training.report import JobReport
from tasks.training.submit import submission_key, submit_job, upload_dataset
from tasks.training.wait import JobWatcher, poll_job

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "data" / "bullets.jsonl"
FAULTS: dict[str, dict[str, Any]] = {
    "429 Retry-After": {"kind": "rate_limit", "retry_after": 0.05},
    "500": {"kind": "server_error", "status": 500},
    "502": {"kind": "server_error", "status": 502},
    "503": {"kind": "server_error", "status": 503},
    "dropped connection": {"kind": "drop", "served": True},
    "timeout": {"kind": "timeout", "delay_s": 0.6},
    "malformed body": {"kind": "malformed"},
}
STAGES = ("upload", "create", "poll", "infer")
ROUTES = {
    "openai": {"upload": "POST /v1/files", "create": "POST /v1/fine_tuning/jobs",
               "poll": "GET /v1/fine_tuning/jobs/*", "infer": "POST /v1/chat/completions"},
    # the presigned PUT: the one upload request the SDK never retries by itself
    "together": {"upload": "PUT /together/uploads/*", "create": "POST /together/v1/fine-tunes",
                 "poll": "GET /together/v1/fine-tunes/*", "infer": "POST /together/v1/chat/completions"},
    # the first S3 PUT of the upload, then the control plane and bedrock-runtime, all under one endpoint_url
    "bedrock": {"upload": "PUT /bedrock/loraflow-faults/*",
                "create": "POST /bedrock/model-customization-jobs",
                "poll": "GET /bedrock/model-customization-jobs/*", "infer": "POST /bedrock/model/*/converse"},
    # OpenAI's API under the resource's /openai path; a chat completion addresses the candidate's deployment
    "azure_openai": {"upload": "POST /azure/openai/files", "create": "POST /azure/openai/fine_tuning/jobs",
                     "poll": "GET /azure/openai/fine_tuning/jobs/*",
                     "infer": "POST /azure/openai/deployments/*/chat/completions"},
    # the GCS media upload, then google-genai's tuningJobs and generateContent on the tuned endpoint
    "vertex": {"upload": "POST /vertex/upload/storage/v1/b/*",
               "create": "POST /vertex/v1beta1/projects/*/tuningJobs",
               "poll": "GET /vertex/v1beta1/projects/*/tuningJobs/*",
               "infer": "POST /vertex/v1beta1/*:generateContent"},
}
SPECS = {
    "openai": TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=1, suffix="faults"),
    "azure_openai": TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=1, suffix="faults"),
    "together": TrainingSpec(base_model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", epochs=1,
                             suffix="faults", lora_r=8),
    "bedrock": TrainingSpec(base_model="amazon.nova-lite-v1:0:300k", epochs=1, suffix="faults"),
    "vertex": TrainingSpec(base_model="gemini-3.5-flash", epochs=1, suffix="faults"),
}
TIMES = 3
CLIENT_TIMEOUT_S = 0.3
TASK_RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2)  # PROVIDER_CALL's [2, 5, 15, 30] s, scaled down
TIMELINE = Timeline(validating_s=0.02, queued_s=0.02, steps=3, step_s=0.02)


class _QuickRetryOpenAI(openai.OpenAI):
    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(super()._calculate_retry_timeout(*args, **kwargs), 0.02)


class _QuickRetryAzure(openai.AzureOpenAI):
    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(super()._calculate_retry_timeout(*args, **kwargs), 0.02)


class _QuickRetryTogether(together.Together):
    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(super()._calculate_retry_timeout(*args, **kwargs), 0.02)


def build_provider(name: str, server: EmulatorServer) -> Provider:
    """The adapter as production builds it (SDK retries on), with a short client timeout."""
    base_url = server.base_url_for(name)
    if name == "bedrock":  # botocore's standard retries (3 attempts) back off briefly on their own
        options = {"bucket": "loraflow-faults", "role_arn": "arn:aws:iam::123456789012:role/BedrockFT",
                   "max_attempts": 3, "timeout_s": CLIENT_TIMEOUT_S, "serve_poll_s": 0.02}
        return BedrockProvider.from_options(options, base_url=base_url, api_key="k")
    if name == "vertex":  # google-genai retries only as configured: three attempts, briefly
        options = {"project": "loraflow-faults", "gcs_bucket": "loraflow-faults", "retry_attempts": 3,
                   "retry_initial_delay_s": 0.01, "retry_max_delay_s": 0.02, "gcs_retry_timeout_s": 2,
                   "timeout_s": CLIENT_TIMEOUT_S}
        return VertexProvider.from_options(options, base_url=base_url, api_key="k")
    if name == "azure_openai":  # the adapter as from_options builds it, on a client that backs off briefly
        options = {"file_poll_interval_s": 0.01, "serve_poll_s": 0.02, "timeout_s": CLIENT_TIMEOUT_S}
        provider = AzureOpenAIProvider.from_options(options, base_url=base_url, api_key="k")
        provider.client = _QuickRetryAzure(azure_endpoint=base_url, api_version=provider.options.api_version,
                                           api_key="k", max_retries=2, timeout=CLIENT_TIMEOUT_S)
        return provider
    if name == "openai":
        client = _QuickRetryOpenAI(base_url=base_url, api_key="k", max_retries=2, timeout=CLIENT_TIMEOUT_S)
        return OpenAIProvider(client, OpenAIOptions(file_poll_interval_s=0.01))
    client = _QuickRetryTogether(base_url=base_url, api_key="k", max_retries=2, timeout=CLIENT_TIMEOUT_S)
    return TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.01))


def with_task_retries(call: Callable[..., Any]) -> Callable[..., Any]:
    """What Prefect does for a PROVIDER_CALL task: retry TransientProviderError four times, nothing else."""
    def retried(*args: Any, **kwargs: Any) -> Any:
        for delay in (*TASK_RETRY_DELAYS, None):
            try:
                return call(*args, **kwargs)
            except TransientProviderError:
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")
    return retried


@dataclass
class Outcome:
    provider: str
    fault: str
    stage: str
    error: LoraflowError | None = None
    jobs_created: int = 0
    files_created: int = 0
    recorded_job_id: str | None = None
    recovered_job_id: str | None = None
    infra_error: str | None = None
    fired: int = 0

    @property
    def completed(self) -> bool:
        return self.error is None and self.infra_error is None

    def cell(self) -> str:
        if self.error is not None:
            text = type(self.error).__name__
        elif self.infra_error is not None:
            text = f"answer error: {self.infra_error}"
        else:
            text = "completed"
        notes = [f"fired {self.fired}/{TIMES}"] if self.fired < TIMES else []
        extra = self.files_created - 1
        notes += [f"+{extra} file{'s' if extra > 1 else ''}"] if extra > 0 else []
        return text + (f" ({', '.join(notes)})" if notes else "")


def dataset(directory: Path, marker: str) -> PreparedDataset:
    """The quickstart's first 30 examples plus one naming the case, so no two cases share an upload."""
    lines = QUICKSTART.read_text(encoding="utf-8").splitlines()[:30]
    lines.append(json.dumps({"messages": [{"role": "user", "content": f"Which case is this? {marker}"},
                                          {"role": "assistant", "content": f"The {marker} case."}]}))
    path = directory / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PreparedDataset(train_path=path, sha256=hashlib.sha256(marker.encode()).hexdigest(),
                           train_examples=len(lines))


@contextmanager
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key="k", timeline=TIMELINE) as server:
        yield server


def run_case(server: EmulatorServer, provider_name: str, fault: str, stage: str, workdir: Path) -> Outcome:
    """One pipeline run with `fault` on `stage`; the fault rule is gone when this returns."""
    provider, outcome = build_provider(provider_name, server), Outcome(provider_name, fault, stage)
    registry, target = Registry(f"sqlite:///{workdir / 'registry.db'}"), f"{provider_name}@emulator"
    data, spec = dataset(workdir, f"{provider_name}/{fault}/{stage}"), SPECS[provider_name]
    key = submission_key(target, {}, spec, data.sha256)
    before = server.state.counters
    server.state.faults.add(FaultRule(ROUTES[provider_name][stage], times=TIMES, **FAULTS[fault]))
    try:
        uploaded = with_task_retries(upload_dataset.fn)(provider, data, registry, target)
        job = with_task_retries(submit_job.fn)(provider, spec, uploaded, registry, target, key)
        status = _wait(provider, job, registry)
        result = _infer(provider, status, data, target)
        outcome.infra_error = result.error
    except LoraflowError as exc:
        outcome.error = exc
    finally:
        outcome.fired = TIMES - sum(rule.times or 0 for rule in server.state.faults.rules)
        server.state.faults.clear()
    after = server.state.counters
    outcome.jobs_created = after["jobs_created"] - before["jobs_created"]
    outcome.files_created = after["files_created"] - before["files_created"]
    record = registry.latest_job(key)
    outcome.recorded_job_id = record.job_id if record else None
    if record is not None and record.job_id is None:
        found = provider.find_job(record.idempotency_key)
        outcome.recovered_job_id = found.job_id if found else None
    return outcome


def _wait(provider: Provider, job: Any, registry: Registry) -> JobStatus:
    config = PollConfig(min_interval_s=0.01, max_interval_s=0.05, jitter=0, max_wait_s=30)
    # events stay local: emitting them outside a flow run would start a Prefect server
    quiet = JobReport(emit=lambda **event: None)
    return JobWatcher(config, registry, poll=with_task_retries(poll_job.fn), report=quiet).wait(provider, job)


def _infer(provider: Provider, status: JobStatus, data: PreparedDataset, target: str) -> Any:
    *prompt, _ = json.loads(data.train_path.read_text(encoding="utf-8").splitlines()[-1])["messages"]
    caller = ModelCaller(provider, target, sleep=lambda seconds: time.sleep(min(seconds, 0.05)))
    item = EvalItem(key="last", messages=prompt)
    # named per job, as the pipeline names it per submission
    model = (provider.serve(status.model, name=f"faults-{status.model.job_id}"[-60:])
             if isinstance(provider, ServesModels) else status.model)
    return answer(provider, model, item, Decoding(max_tokens=64), "candidate", caller=caller)


def run_matrix() -> list[Outcome]:
    outcomes = []
    for provider_name in ROUTES:
        with emulator() as server, tempfile.TemporaryDirectory() as scratch:
            for number, (fault, stage) in enumerate((f, s) for f in FAULTS for s in STAGES):
                workdir = Path(scratch) / str(number)
                workdir.mkdir()
                outcomes.append(run_case(server, provider_name, fault, stage, workdir))
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    """Markdown: one row per provider and fault, one column per stage."""
    lines = ["| provider | fault | " + " | ".join(STAGES) + " |", "|---|---|" + "---|" * len(STAGES)]
    cells = {(o.provider, o.fault, o.stage): o.cell() for o in outcomes}
    for provider_name in ROUTES:
        for fault in FAULTS:
            row = [cells.get((provider_name, fault, stage), "-") for stage in STAGES]
            lines.append(f"| {provider_name} | {fault} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.monotonic()
    results = run_matrix()
    print(table(results))
    duplicates = [o for o in results if o.jobs_created != 1]
    print(f"\n{len(results)} cases, {sum(o.completed for o in results)} completed, "
          f"{len(duplicates)} with a job count other than one, {time.monotonic() - started:.1f} s")
