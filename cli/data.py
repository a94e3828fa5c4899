"""`loraflow data`: check a chat JSONL file against a target, or prepare a pipeline's data.

`check` prints the report (or, with --json, one JSON object per diagnostic as it is found, then a
summary object) and exits 2 when the data has errors, like every user mistake in the CLI. `prepare`
runs the pipeline's data step alone, without Prefect, into a new run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from cli.console import fail
from cli.generate import generate
from providers.errors import ConfigError, DataError, LoraflowError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Check and prepare chat datasets.")
app.command()(generate)


@app.command()
def check(file: Annotated[Path, typer.Argument(help="chat JSONL in the OpenAI shape")],
          provider: Annotated[str, typer.Option(help="the target provider; its rules decide the severities")]
          = "openai",
          model: Annotated[str, typer.Option(help="the base model: context limit and tokenizer")] = "",
          eval_file: Annotated[Path | None, typer.Option(help="your eval set, checked for leakage")] = None,
          pii: Annotated[str, typer.Option(help="scrub, reject or report")] = "report",
          as_json: Annotated[bool, typer.Option(
              "--json", help="one JSON object per diagnostic, then a summary")] = False
          ) -> None:
    """Check a dataset for every problem `prepare` would find, without writing anything."""
    from tasks.data.config import DataConfig, PiiConfig
    from tasks.data.report import render_markdown
    from tasks.data.stage import check_file
    from tasks.data.target import DataTarget

    if not file.is_file():
        raise fail(f"{file}: no such file")
    try:
        config = DataConfig(path=file, eval_path=eval_file, pii=PiiConfig(policy=pii))
        target = DataTarget(provider, model)
        target.format  # noqa: B018 -- an unknown provider is a one-line error before the scan
        sink = (lambda d: typer.echo(json.dumps(d.as_json(), ensure_ascii=False))) if as_json else None
        report = check_file(config, target, sink=sink)
    except ValidationError as exc:
        raise fail(ConfigError.from_validation(exc, where="loraflow data check")) from None
    except LoraflowError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"summary": _summary(report)}, ensure_ascii=False))
    else:
        typer.echo(render_markdown(report))
    if report["diagnostics"]["errors"]:
        raise typer.Exit(2)


@app.command()
def prepare(pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")]) -> None:
    """Run the pipeline's data step alone: report, prepared train/eval files and the manifest."""
    from flows.config import load_pipeline
    from tasks.data.stage import prepare as prepare_data
    from tasks.data.target import DataTarget

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        raise fail(exc) from None
    data = config.data.resolved(pipeline.resolve().parent)
    target = DataTarget(config.provider.name, config.training.base_model, config.training.epochs)
    run = config.new_run()
    try:
        dataset = prepare_data(data, run, target)
    except DataError as exc:
        raise fail(f"{exc} (report: {run.root / 'report.md'})") from None
    except LoraflowError as exc:
        raise fail(exc) from None
    typer.echo(f"prepared {dataset.train_examples} train and {dataset.eval_examples} eval examples "
               f"({dataset.train_tokens:,} train tokens)")
    # where the files stay (the run directory, local or in an object store), not the local copies made for it
    typer.echo(f"train  {run.data_dir / 'train.jsonl'}\neval   {run.data_dir / 'eval.jsonl'}\n"
               f"report {run.root / 'report.md'}")


def _summary(report: dict) -> dict:
    return {key: report[key] for key in ("input", "status", "target", "counts", "tokens", "pii", "duplicates",
                                         "leakage", "diversity", "checks")} | {
        "errors": report["diagnostics"]["errors"], "warnings": report["diagnostics"]["warnings"],
        "by_code": report["diagnostics"]["by_code"]}
