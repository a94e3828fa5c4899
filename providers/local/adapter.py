"""`provider: local`: LoRA fine-tunes on this machine's CPU or GPU, with transformers + PEFT.

Each job is a directory under `work_dir/jobs/` and a trainer subprocess (providers.local.train) that writes
status, metrics and checkpoints there, so an out-of-memory kill or a crash in the trainer ends the job
FAILED (with the tail of its log) instead of taking the flow down. The job id is derived from the
idempotency key: a re-run finds its job, and create_job on a job that failed or was cancelled resumes it
from its last checkpoint. `base_model: tiny:NAME` names a tiny model the first job builds offline under
`work_dir/models/NAME`; any other value is a local directory or a Hugging Face id.

Inference runs with transformers in this process (models cached between calls), or, when the provider is
given an endpoint, through a vLLM (OpenAI-compatible) server started by `loraflow serve-model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

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
)
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.local.config import NAME, LocalOptions, parse_options, train_config
from providers.local.jobdir import JobDir, write_json
from providers.local.loading import INSTALL_HINT, require
from providers.local.parity import describe as describe_parity

TINY = "tiny:"
_STATES = {"pending": JobState.PENDING, "running": JobState.RUNNING, "succeeded": JobState.SUCCEEDED,
           "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class LocalProvider:
    name: ClassVar[str] = NAME
    needs_credentials: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = LocalOptions

    def __init__(self, options: LocalOptions | None = None, *, endpoint: str | None = None) -> None:
        self.options = options or LocalOptions()
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.work_dir = self.options.work_dir.expanduser().resolve()
        self._procs: dict[str, subprocess.Popen] = {}
        self._generator = None

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> LocalProvider:
        return cls(parse_options(options), endpoint=base_url)

    # ---- where things live

    def base_path(self, base_model: str) -> str:
        if base_model.startswith(TINY):
            return str(self.work_dir / "models" / base_model[len(TINY):])
        local = Path(base_model).expanduser()
        return str(local.resolve()) if local.exists() else base_model

    def _job(self, job: JobRef | str) -> JobDir:
        job_id = job if isinstance(job, str) else job.job_id
        found = JobDir(self.work_dir / "jobs" / job_id)
        if not found.file("job.json").exists():
            raise PermanentProviderError(self.name, f"no job {job_id!r} under {self.work_dir / 'jobs'}")
        return found

    # ---- the Provider protocol

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        train_config(spec, self.options, base_model=spec.base_model, train_path=Path("train.jsonl"),
                     eval_path=None)
        for module in ("torch", "transformers", "peft", "safetensors"):
            require(module, "provider: local")
        if self.options.backend == "unsloth" and self.options.python is None:
            require("unsloth", "provider.options.backend: unsloth",
                    "install it in its own venv (it pins older "
                    "transformers/trl) and set provider.options.python to that venv's python")
        if self.options.load_in_4bit:
            require("bitsandbytes", "provider.options.load_in_4bit", "pip install 'loraflow[local,qlora]'")
        name = spec.base_model[len(TINY):] if spec.base_model.startswith(TINY) else None
        if name is not None and (not name or "/" in name or name.startswith(".")):
            raise ConfigError(f"training.base_model: {spec.base_model!r}: a tiny model is named tiny:NAME, "
                              "NAME without slashes")
        return []

    def upload(self, data: PreparedDataset) -> DatasetRef:
        folder = self.work_dir / "datasets" / data.sha256
        if not (folder / "train.jsonl").exists():
            folder.mkdir(parents=True, exist_ok=True)
            if data.eval_path is not None:
                shutil.copyfile(data.eval_path, folder / ".eval.tmp")
                os.replace(folder / ".eval.tmp", folder / "eval.jsonl")
            shutil.copyfile(data.train_path, folder / ".train.tmp")
            os.replace(folder / ".train.tmp", folder / "train.jsonl")  # last: its presence means complete
        has_eval = (folder / "eval.jsonl").exists()
        return DatasetRef(provider=self.name, train_file_id=str(folder / "train.jsonl"),
                          validation_file_id=str(folder / "eval.jsonl") if has_eval else None,
                          sha256=data.sha256)

    def create_job(self, spec: TrainingSpec, data: DatasetRef, *, idempotency_key: str) -> JobRef:
        job_id = "local-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        ref = JobRef(provider=self.name, job_id=job_id, idempotency_key=idempotency_key)
        job = JobDir(self.work_dir / "jobs" / job_id)
        if job.file("job.json").exists():
            self.resume(ref)
            return ref
        base = self.base_path(spec.base_model)
        cfg = train_config(spec, self.options, base_model=base, train_path=Path(data.train_file_id),
                           eval_path=Path(data.validation_file_id) if data.validation_file_id else None,
                           build_tiny_steps=self.options.tiny_pretrain_steps
                           if spec.base_model.startswith(TINY) else None)
        write_json(job.file("config.json"), cfg.model_dump(mode="json"))
        write_json(job.file("job.json"), {"idempotency_key": idempotency_key, "job_id": job_id,
                                          "base_model": spec.base_model, "base_path": base,
                                          "dataset": data.model_dump(mode="json")})
        self._launch(job)
        return ref

    def get_job(self, job: JobRef) -> JobStatus:
        found = self._job(job)
        status = found.status()
        vendor = status.get("state", "pending")
        if vendor not in _STATES:
            raise UnexpectedProviderResponse(self.name, f"job {job.job_id}: unknown trainer state {vendor!r}")
        state, message = _STATES[vendor], status.get("message", "")
        if not state.is_terminal and not self._alive(found):
            state, message = (JobState.FAILED,
                              "the trainer exited without a final status (killed: out of memory?)")
        elif state is JobState.RUNNING and found.cancel_requested:
            state = JobState.CANCELLING
        if state is JobState.FAILED:
            message = f"{message}\n--- last lines of {found.file('train.log')} ---\n{found.log_tail()}"
        model = None
        if state is JobState.SUCCEEDED:
            model = ModelRef(provider=self.name, model_id=job.job_id, job_id=job.job_id,
                             base_model=found.read("job.json")["base_model"])
        metrics = {k: float(v) for k, v in status.get("metrics", {}).items() if isinstance(v, int | float)}
        return JobStatus(job=job, state=state, vendor_state=vendor, message=message, step=status.get("step"),
                         total_steps=status.get("total_steps"), metrics=metrics, model=model,
                         trained_tokens=int(metrics["tokens"]) if "tokens" in metrics else None)

    def cancel(self, job: JobRef) -> None:
        found = self._job(job)
        if _STATES.get(found.status().get("state", "pending"), JobState.PENDING).is_terminal:
            return
        found.file("cancel").touch()
        if not self._alive(found):
            found.write_status(state="cancelled", message="cancelled before the trainer ran")

    def find_job(self, idempotency_key: str) -> JobRef | None:
        for meta in sorted((self.work_dir / "jobs").glob("*/job.json")):
            record = json.loads(meta.read_text(encoding="utf-8"))
            if record["idempotency_key"] == idempotency_key:
                return JobRef(provider=self.name, job_id=record["job_id"], idempotency_key=idempotency_key)
        return None

    def loss_curve(self, job: JobRef) -> list[dict[str, float]]:
        """Every optimizer step's training loss, as the trainer logged it."""
        lines = self._job(job).file("metrics.jsonl")
        rows = ([json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines()]
                if lines.exists() else [])
        return [{"step": float(row["step"]), "train_loss": float(row["train_loss"])} for row in rows]

    def evaluated_artifact(self, model: ModelRef) -> dict[str, str]:
        """What answers for a tuned model here: the server at `endpoint` (vLLM with the adapter), or the
        job's adapter/ loaded in-process (the training output, not a serving stack)."""
        if self.endpoint:
            return {"artifact": "served", "detail": f"the OpenAI-compatible server at {self.endpoint} "
                                                    "(loraflow serve-model: vLLM with the adapter)"}
        adapter = self.work_dir / "jobs" / (model.job_id or model.model_id) / "adapter"
        return {"artifact": "training_output",
                "detail": f"{adapter} loaded in-process with transformers; to judge what serves, start "
                          "loraflow serve-model and set provider.endpoint"}

    def trained_files(self, job: JobRef) -> dict[str, Path]:
        """The job record and the finished adapter: what `loraflow serve-model` reads (checkpoints stay)."""
        found = self._job(job)
        return {name: found.file(name) for name in ("job.json", "config.json", "status.json", "adapter")
                if found.file(name).exists()}

    def template_parity(self, job: JobRef) -> dict[str, Any] | None:
        """What the trainer found comparing the serving side's prompts with the trained tokens
        (providers/local/parity.py), or None for a job that wrote none."""
        parity = self._job(job).read("template_parity.json")
        return None if parity is None else {**parity, "problems": describe_parity(parity)}

    def resume(self, job: JobRef) -> None:
        """Start the trainer again for a job that failed or was cancelled; it continues from its last
        checkpoint. A running or finished job is left alone."""
        found = self._job(job)
        state = found.status().get("state")
        if state == "succeeded" or (state not in ("failed", "cancelled") and self._alive(found)):
            return
        for _ in range(100):  # a trainer that just wrote its final status may still be exiting
            if not self._alive(found):
                break
            time.sleep(0.1)
        found.file("cancel").unlink(missing_ok=True)
        found.write_status(state="pending", message="resuming")
        self._launch(found)

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        if self.endpoint:
            return self._infer_http(model, messages, params)
        if model.is_tuned:
            found = self._job(model.job_id)
            base, adapter = found.read("job.json")["base_path"], found.adapter
        else:
            base, adapter = self.base_path(model.model_id), None
            if model.model_id.startswith(TINY) and not Path(base).exists():
                raise ConfigError(f"{model.model_id} is not built yet: the first job on it builds it")
        if self._generator is None:
            require("torch", "provider: local inference")
            from providers.local.inference import LocalGenerator

            self._generator = LocalGenerator(self.options.device)
        return self._generator.complete(model.model_id, base, adapter, messages, params)

    # ---- the trainer process

    def _launch(self, job: JobDir) -> None:
        python = self.options.python or sys.executable
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        with job.file("train.log").open("a", encoding="utf-8") as log:
            proc = subprocess.Popen([*_launcher(python, job), "providers.local.train", str(job.root)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    # a flow interrupted by ^C leaves training running
                                    start_new_session=True)
        self._procs[job.job_id] = proc
        job.file("pid").write_text(str(proc.pid), encoding="utf-8")

    def _alive(self, job: JobDir) -> bool:
        proc = self._procs.get(job.job_id)
        if proc is not None:
            return proc.poll() is None
        try:
            pid = int(job.file("pid").read_text(encoding="utf-8"))
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        return str(job.root).encode() in cmdline  # not another process that reused the pid

    def _infer_http(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        name = model.model_id if model.is_tuned else self.base_path(model.model_id)
        body = {"model": name, "messages": messages, "temperature": params.temperature,
                "max_tokens": params.max_tokens, "top_p": params.top_p, "seed": params.seed,
                "stop": params.stop}
        request = urllib.request.Request(f"{self.endpoint}/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            error = TransientProviderError if exc.code >= 500 or exc.code == 429 else PermanentProviderError
            raise error(self.name, f"{self.endpoint}: HTTP {exc.code}", status_code=exc.code) from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise TransientProviderError(self.name, f"{self.endpoint}: {exc}") from exc
        choice, usage = answer["choices"][0], answer.get("usage") or {}
        return Completion(text=choice["message"]["content"] or "", model_id=model.model_id,
                          finish_reason=choice.get("finish_reason") or "stop",
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0))


__all__ = ["INSTALL_HINT", "LocalProvider"]


def _launcher(python: str, job: JobDir) -> list[str]:
    """`python -m`, or torchrun (as `python -m torch.distributed.run`) for a multi-process job: one
    machine, a free rendezvous port, and the ranks' output in the one train.log."""
    processes = json.loads(job.file("config.json").read_text(encoding="utf-8")).get("num_processes", 1)
    if processes <= 1:
        return [python, "-m"]
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m"]
