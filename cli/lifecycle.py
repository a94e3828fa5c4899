"""`loraflow retrain PIPELINE`, `loraflow monitor PIPELINE` and `loraflow migrate PIPELINE --base NEW_BASE`:
the flows that keep a fine-tune from going stale, and move it when its base or provider retires.

The deployments in deployments/prefect.yaml run the same flows on their schedules (quarterly, daily).
Exit codes: 2 for a bad pipeline file, 1 for a provider or job failure; `monitor` also exits 1 when it alerts,
so a cron job or CI step notices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli.console import console, fail
from providers.errors import LoraflowError

if TYPE_CHECKING:  # flows are imported when a command runs: Prefect is slow to import
    from flows.config import Pipeline

_STYLE = {"info": "green", "warn": "yellow", "alert": "bold red"}

PipelineFile = Annotated[Path, typer.Argument(help="the pipeline YAML file")]
T = TypeVar("T")


def _run(flow: Callable[[Pipeline], T], path: Path) -> T:
    from cli.rehearsal import emulator_for
    from cli.ui import prefect_api
    from flows.config import load_pipeline

    try:
        pipeline = load_pipeline(path)
        with prefect_api(), emulator_for(*pipeline.endpoints):
            return flow(pipeline)
    except LoraflowError as exc:
        raise fail(exc) from None


def retrain(pipeline: PipelineFile) -> None:
    """Retrain on new data and the newest base; promote a candidate only if it beats champion and base."""
    from flows.retrain import retrain as retrain_flow

    summary = _run(retrain_flow, pipeline)
    promoted = f"; registered v{summary.version} as challenger" if summary.version else ""
    console.print(f"[bold]{summary.winner}[/] wins: {summary.reason}{promoted}", highlight=False,
                  soft_wrap=True)
    console.print(f"run directory: {summary.run_dir}", highlight=False, soft_wrap=True)


def monitor(pipeline: PipelineFile) -> None:
    """Online metrics, input drift, the newest base's gap and provider retirements; exit 1 on an alert."""
    from flows.monitor import monitor as monitor_flow

    summary = _run(monitor_flow, pipeline)
    for finding in summary.findings:
        console.print(f"[{_STYLE[finding.severity]}]{finding.severity}[/] {finding.kind}: {finding.message}",
                      highlight=False, soft_wrap=True)
    console.print(f"report: {summary.report_dir / 'report.md'}", highlight=False, soft_wrap=True)
    if summary.alerts:
        raise typer.Exit(1)


def migrate(pipeline: PipelineFile,
            base: Annotated[str, typer.Option("--base", help="the new base model")],
            provider: Annotated[str | None, typer.Option(
                "--provider", help="the new provider (default: the pipeline's); its options come from "
                                   "monitor.migrate_to when that names it")] = None) -> None:
    """Re-run the pipeline's frozen data and eval set on a new base or provider; promote only a candidate
    that beats the current champion and the new base."""
    from flows.migrate import migrate as migrate_flow

    summary = _run(lambda loaded: migrate_flow(loaded, base, provider), pipeline)
    compared = ", ".join(f"{label}: {outcome}" for label, outcome in summary.outcomes.items())
    promoted = f"; registered v{summary.version} as challenger" if summary.version else ""
    console.print(f"[bold]{summary.winner}[/] wins on {summary.provider} {summary.base_model} ({compared}): "
                  f"{summary.reason}{promoted}", highlight=False, soft_wrap=True)
    console.print(f"run directory: {summary.run_dir}", highlight=False, soft_wrap=True)
