"""`loraflow serve-model RUN_DIR`: serve a local fine-tune's adapter with vLLM (OpenAI-compatible)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, fail
from providers.errors import ConfigError
from providers.local.jobdir import trained_job_dir, write_json
from providers.local.serve import serve_plan, shell_line
from tasks.registry import loraflow_home
from tasks.rundir import RunDir
from tasks.runstore import RunPath, download, is_remote, run_path


def job_directory(run_dir: RunPath) -> Path:
    """RUN_DIR itself when it is a local job directory, else the job a pipeline run's manifest names; for a
    run in an object store, its training/output/ copied to $LORAFLOW_HOME/served/."""
    if not is_remote(run_dir) and (run_dir / "job.json").exists():
        return run_dir
    run = RunDir(run_dir)
    if not run.manifest_path.exists():
        raise ConfigError(f"{run_dir}: neither a local job directory (job.json) nor a run directory "
                          "(manifest.json)")
    manifest = run.manifest()
    if is_remote(run_dir):
        return _copied(run, manifest)
    try:
        return trained_job_dir(manifest.get("training") or {})
    except ConfigError as exc:
        raise ConfigError(f"{run.manifest_path}: {exc}") from None


def _copied(run: RunDir, manifest: dict) -> Path:
    kept = manifest.get("trained_files")
    if not kept:
        raise ConfigError(f"{run.root}: the run kept no trained files "
                          "(serve-model serves provider: local runs)")
    local = loraflow_home() / "served" / hashlib.sha256(str(run.root).encode()).hexdigest()[:16]
    folder = run.root.joinpath(*kept["folder"].split("/"))
    for remote in folder.rglob("*"):
        if remote.is_file():
            download(remote, local.joinpath(*remote.relative_to(folder).parts))
    return local


def serve_model(run_dir: Annotated[str, typer.Argument(help="a run directory (a path, or s3://... for a run "
                                                           "kept in an object store) or a local job "
                                                           "directory")],
                port: Annotated[int, typer.Option(help="the port vLLM listens on")] = 8000,
                name: Annotated[str | None, typer.Option(help="the adapter's model name (default: job id)")]
                = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command, start nothing")]
                = False,
                ) -> None:
    """Start vLLM with the run's LoRA adapter; without vLLM, print the command and write a compose file."""
    try:
        plan = serve_plan(job_directory(run_path(run_dir)), port=port, name=name)
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
