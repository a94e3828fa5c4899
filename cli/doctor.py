"""`loraflow doctor PIPELINE.yaml`: readiness before the first run, each finding with what to do.

Exit codes: 0 ready (warnings allowed), 1 something would make the run fail, 2 the pipeline file itself is
wrong (its one-line error is the finding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from providers.errors import ConfigError

console = Console()
_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor(pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")]) -> None:
    """Check a pipeline is ready to run: credentials, base model, eval suites, data volume, budget."""
    from cli.readiness import Readiness, diagnose
    from flows.config import load_pipeline

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        # a Text, not markup: the message may hold a pattern such as [a-z0-9] that markup would eat
        console.print(Text.assemble(("fail", "bold red"), f" pipeline file: {exc}"), highlight=False,
                      soft_wrap=True)
        raise typer.Exit(2) from None
    findings = diagnose(Readiness.of(config))
    table = Table("", "check", "finding", "what to do", show_lines=False)
    for f in findings:
        table.add_row(f"[{_STYLE[f.level]}]{f.level}[/]", f.check, f.message, f.fix)
    console.print(table)
    failed = sum(f.level == "fail" for f in findings)
    warned = sum(f.level == "warn" for f in findings)
    recipe = f" (recipe {config.recipe})" if config.recipe else ""
    console.print(f"{failed} to fix, {warned} to consider{recipe}")
    if failed:
        raise typer.Exit(1)
