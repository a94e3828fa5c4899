"""Serving a local adapter with vLLM's OpenAI-compatible server (`--enable-lora --lora-modules name=path`).

vLLM pins its own torch, so it lives in its own environment (or container): when `vllm` is on PATH the
command runs, otherwise loraflow prints it and writes a compose file that runs the official image.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from providers.errors import ConfigError
from providers.local.jobdir import JobDir

# --max-lora-rank takes one of these; vLLM's default is 16 (reference/local.md §7)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
IMAGE = "vllm/vllm-openai:latest"


@dataclass(frozen=True)
class ServePlan:
    name: str
    base: str
    adapter: Path
    rank: int
    port: int

    @property
    def max_lora_rank(self) -> int | None:
        if self.rank <= 16:
            return None
        return next(r for r in LORA_RANKS if r >= self.rank)

    def args(self, base: str, adapter: str) -> list[str]:
        args = ["serve", base, "--enable-lora", "--lora-modules", f"{self.name}={adapter}", "--port",
                str(self.port)]
        if (self.adapter / "chat_template.jinja").is_file():  # the template trained with, not the base's
            args += ["--chat-template", f"{adapter}/chat_template.jinja"]
        return args + (["--max-lora-rank", str(self.max_lora_rank)] if self.max_lora_rank else [])

    def command(self) -> list[str]:
        return ["vllm", *self.args(self.base, str(self.adapter))]

    def compose(self) -> str:
        """A compose file for the vLLM image, the base and the adapter mounted read-only."""
        base_is_dir = Path(self.base).is_dir()
        base = "/models/base" if base_is_dir else self.base
        volumes = ([f"{self.adapter}:/adapters/{self.name}:ro"]
                   + ([f"{self.base}:/models/base:ro"] if base_is_dir else []))
        command = self.args(base, f"/adapters/{self.name}")[1:]
        lines = ["services:", "  vllm:", f"    image: {IMAGE}", f"    command: {json.dumps(command)}",
                 f'    ports: ["{self.port}:{self.port}"]', "    volumes:",
                 *[f'      - "{v}"' for v in volumes],
                 "    deploy:", "      resources:", "        reservations:", "          devices:",
                 "            - {driver: nvidia, count: 1, capabilities: [gpu]}", ""]
        return "\n".join(lines)


def serve_plan(job_root: Path, *, port: int = 8000, name: str | None = None) -> ServePlan:
    """What serving this job's adapter takes: its base, its adapter directory and its LoRA rank."""
    job = JobDir(job_root.resolve())
    record = job.read("job.json")
    config = JobDir(job.adapter).read("adapter_config.json") if record else None
    if record is None or config is None:
        raise ConfigError(f"{job_root}: not a finished local job "
                          "(no job.json or adapter/adapter_config.json)")
    return ServePlan(name=name or job.job_id, base=record["base_path"], adapter=job.adapter,
                     rank=int(config["r"]), port=port)


def shell_line(plan: ServePlan) -> str:
    return shlex.join(plan.command())
