"""One local job on disk: the files the trainer subprocess writes and the provider reads.

    jobs/<job_id>/job.json        idempotency key, base model, dataset (written once by create_job)
                  config.json     the resolved TrainConfig
                  status.json     state, step, total_steps, message, metrics (rewritten atomically)
                  metrics.jsonl   one line per optimizer step
                  train.log       the trainer's stdout and stderr
                  pid             the trainer's process id
                  cancel          present once a cancel was asked for
                  checkpoints/step-N/   adapter weights, optimizer and scheduler state (resume points)
                  adapter/        the finished adapter, tokenizer and chat template beside it
                  merged/         the merged model, when merge_lora
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.errors import ConfigError
from providers.local.config import NAME


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, default=str)
    os.replace(tmp, path)


@dataclass(frozen=True)
class JobDir:
    root: Path

    @property
    def job_id(self) -> str:
        return self.root.name

    def file(self, name: str) -> Path:
        return self.root / name

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.file(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def status(self) -> dict[str, Any]:
        return self.read("status.json") or {"state": "pending"}

    def write_status(self, **fields: Any) -> None:
        write_json(self.file("status.json"), {**self.status(), **fields})

    @property
    def cancel_requested(self) -> bool:
        return self.file("cancel").exists()

    def last_checkpoint(self) -> Path | None:
        done = [p for p in self.checkpoints.glob("step-*") if (p / "state.json").exists()]
        return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.file("train.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def trained_job_dir(training: dict[str, Any]) -> Path:
    """The job directory of a pipeline run's `training` record (its manifest section) when this provider
    trained it; ConfigError for a run on another provider."""
    if training.get("provider") != NAME:
        raise ConfigError(f"the run trained on {training.get('provider')!r}; "
                          f"serve-model serves provider: {NAME} runs")
    work_dir = Path(training["upload"]["train_file_id"]).parents[2]  # <work_dir>/datasets/<sha>/train.jsonl
    return work_dir / "jobs" / training["job"]["job_id"]
