"""`loraflow serve-model RUN_DIR`: serve a local fine-tune's adapter with vLLM (OpenAI-compatible)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, fail
from providers.errors import ConfigError
from providers.local.jobdir import trained_job_dir, write_json
from providers.local.serve import serve_plan, shell_line
from tasks.rundir import RunDir


def job_directory(run_dir: Path) -> Path:
    """RUN_DIR itself when it is a local job directory, else the job a pipeline run's manifest names."""
    if (run_dir / "job.json").exists():
        return run_dir
    run = RunDir(run_dir)
    if not run.manifest_path.exists():
        raise ConfigError(f"{run_dir}: neither a local job directory (job.json) nor a run directory "
                          "(manifest.json)")
    try:
        return trained_job_dir(run.manifest().get("training") or {})
    except ConfigError as exc:
        raise ConfigError(f"{run.manifest_path}: {exc}") from None


def serve_model(run_dir: Annotated[Path, typer.Argument(help="a run directory or a local job directory")],
                port: Annotated[int, typer.Option(help="the port vLLM listens on")] = 8000,
                name: Annotated[str | None, typer.Option(help="the adapter's model name (default: job id)")]
                = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command, start nothing")]
                = False,
                ) -> None:
    """Start vLLM with the run's LoRA adapter; without vLLM, print the command and write a compose file."""
    try:
        plan = serve_plan(job_directory(run_dir), port=port, name=name)
    except ConfigError as exc:
        raise fail(exc) from None
    compose = plan.adapter.parent / "compose.yaml"
    compose.write_text(plan.compose(), encoding="utf-8")
    write_json(plan.adapter.parent / "serve.json",
               {"model": plan.name, "port": port, "command": plan.command()})
    console.print(f"serve: {shell_line(plan)}", highlight=False, soft_wrap=True)
    console.print(f"then: POST http://localhost:{port}/v1/chat/completions with model={plan.name!r}; "
                  f"compose file: {compose}", highlight=False, soft_wrap=True)
    if dry_run:
        return
    if shutil.which("vllm") is None:
        console.print("vllm is not installed here (it pins its own torch: give it its own venv, or run the "
                      "compose file on a GPU host)", highlight=False)
        return
    raise typer.Exit(subprocess.call(plan.command()))
