"""`loraflow eval PIPELINE.yaml --candidate MODEL [--baseline MODEL]`: the evaluation and the gate, alone.

Runs the pipeline's eval suites on an existing model against its baseline (default: the pipeline's base
model) on the pipeline's provider, writes a run directory (eval/outputs.jsonl, eval/report.md,
decision.json, manifest.json) and prints the decision. No training, no Prefect server; answers come from
the registry's cache when an earlier run already paid for them. Exit codes: 0 done, 1 provider error,
2 configuration error, 3 not accepted (only with --fail-unless-accepted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.console import console, errors, fail
from providers.base import ModelRef
from providers.errors import LoraflowError

# interspersed args: `loraflow eval PIPELINE --candidate M` when this app is mounted with add_typer
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"allow_interspersed_args": True})


@app.callback(invoke_without_command=True)
def evaluate(
    pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")],
    candidate: Annotated[str, typer.Option(help="the model to evaluate, e.g. ft:gpt-4o-mini-...:abc")],
    baseline: Annotated[str | None, typer.Option(help="what it must beat; default: training.base_model")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    fail_unless_accepted: Annotated[bool, typer.Option("--fail-unless-accepted",
                                                       help="exit 3 unless accept or accept_weak")] = False,
) -> None:
    """Evaluate CANDIDATE against the baseline on the pipeline's suites and apply the promotion gate."""
    from cli.rehearsal import emulator_for
    from cli.ui import prefect_api
    from flows.config import load_pipeline

    try:
        config = load_pipeline(pipeline)
        with prefect_api(), emulator_for(*config.endpoints):
            decision, run_dir = _run(config, candidate, baseline)
    except LoraflowError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(decision.model_dump_json(indent=2))
    else:
        from cli.display import decision_panel

        console.print(decision_panel(decision, candidate, str(run_dir)))
        console.print(f"report: {run_dir / 'eval' / 'report.md'}")
    if fail_unless_accepted and not decision.accepted:
        raise typer.Exit(3)


def _run(config, candidate: str, baseline: str | None):
    """The finetune flow's evaluate and decide steps, on an existing model, without Prefect."""
    from tasks.connection import open_provider
    from tasks.data.stage import prepare
    from tasks.data.target import DataTarget
    from tasks.evaluation.config import HELDOUT
    from tasks.evaluation.evaluate import evaluate_and_record
    from tasks.evaluation.gate import decide_and_record
    from tasks.evaluation.store import EvalStore
    from tasks.registry import Registry

    run, training = config.new_run(), config.training
    heldout = None
    if any(s.items == HELDOUT for s in config.eval.effective_suites):
        target = DataTarget(config.provider.name, training.base_model, training.epochs)
        heldout = prepare(config.data, run, target).eval_path
    store = EvalStore(Registry.open(config.registry_url).engine)
    refs = {role: ModelRef(provider=config.provider.name, model_id=model_id, base_model=training.base_model)
            for role, model_id in (("base", baseline or training.base_model), ("candidate", candidate))}
    provider = open_provider(config.provider)
    with Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=errors, transient=True) as bar:
        task = bar.add_task("answers", total=None)
        evaluation = evaluate_and_record(
            provider, refs["base"], refs["candidate"], config.eval, run, target=config.provider.target,
            heldout=heldout, store=store,
            on_done=lambda done, total: bar.update(task, completed=done, total=total))
    decision, _ = decide_and_record(evaluation, config.gate, run, store)
    return decision, run.root
