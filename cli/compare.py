"""`loraflow compare RUN_A RUN_B`: configuration and metric differences of two run directories."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markdown import Markdown

from cli.console import console, fail
from providers.errors import ConfigError


def compare(run_a: Annotated[str, typer.Argument(help="a run directory (runs/<pipeline>/<run id>, or "
                                                      "s3://bucket/prefix/<pipeline>/<run id>)")],
            run_b: Annotated[str, typer.Argument(help="the run to hold against it")],
            markdown: Annotated[bool, typer.Option("--markdown", help="print the markdown source")] = False
            ) -> None:
    """Show what changed between two runs (configuration) and what it did (metrics), side by side."""
    from tasks.evaluation.runs import compare_runs, render_markdown
    from tasks.runstore import run_path

    try:
        text = render_markdown(compare_runs(run_path(run_a), run_path(run_b)))
    except ConfigError as exc:
        raise fail(exc) from None
    if markdown:
        typer.echo(text)
    else:
        console.print(Markdown(text))
