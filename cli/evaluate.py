"""`loraflow eval PIPELINE.yaml --candidate MODEL [--baseline MODEL]`: the evaluation and the gate, alone.

Runs the pipeline's eval suites on an existing model against its baseline (default: the pipeline's base
model) on the pipeline's provider, writes a run directory (eval/outputs.jsonl, eval/report.md,
decision.json, manifest.json) and prints the decision. No training, no Prefect server; answers come from
the registry's cache when an earlier run already paid for them. Exit codes: 0 done, 1 provider error,
2 configuration error, 3 not accepted (only with --fail-unless-accepted).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from providers.base import ModelRef
from providers.errors import ConfigError, LoraflowError

# interspersed args: `loraflow eval PIPELINE --candidate M` when this app is mounted with add_typer
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"allow_interspersed_args": True})
console = Console()
errors = Console(stderr=True)


def fail(exc: LoraflowError) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.callback(invoke_without_command=True)
def evaluate(
    pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")],
    candidate: Annotated[str, typer.Option(help="the model to evaluate, e.g. ft:gpt-4o-mini-...:abc")],
    baseline: Annotated[str | None, typer.Option(help="what it must beat; default: training.base_model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    fail_unless_accepted: Annotated[bool, typer.Option("--fail-unless-accepted",
                                                       help="exit 3 unless accept or accept_weak")] = False,
) -> None:
    """Evaluate CANDIDATE against the baseline on the pipeline's suites and apply the promotion gate."""
    from flows.config import load_pipeline

    try:
        config = load_pipeline(pipeline)
        summary = _run(config, candidate, baseline)
    except LoraflowError as exc:
        raise fail(exc) from None
    decision, run_dir = summary
    if as_json:
        typer.echo(decision.model_dump_json(indent=2))
    else:
        from cli.display import decision_panel

        console.print(decision_panel(decision, candidate, str(run_dir)))
        console.print(f"report: {run_dir / 'eval' / 'report.md'}")
    if fail_unless_accepted and not decision.accepted:
        raise typer.Exit(3)


def _run(config, candidate: str, baseline: str | None):
    from tasks.connection import open_provider
    from tasks.evaluation.config import HELDOUT
    from tasks.evaluation.evaluate import record_evaluation, run_evaluation
    from tasks.evaluation.store import EvalStore
    from tasks.evaluation.gate import decide, record_decision
    from tasks.registry import Registry
    from tasks.rundir import RunDir

    eval_config = config.eval  # load_pipeline resolved its item files
    config_sha = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    run = RunDir.create(config.run_root, config.name, config_sha)
    heldout = None
    if any(s.items == HELDOUT for s in eval_config.effective_suites):
        from tasks.data.stage import prepare
        from tasks.data.target import DataTarget

        target = DataTarget(config.provider.name, config.training.base_model, config.training.epochs)
        heldout = prepare(config.data, run, target).eval_path
    store = EvalStore(Registry.open(config.registry_url).engine)
    base_model = config.training.base_model
    refs = {role: ModelRef(provider=config.provider.name, model_id=model_id, base_model=base_model)
            for role, model_id in (("base", baseline or base_model), ("candidate", candidate))}
    with open_provider(config.provider.name, config.provider.options, config.provider.endpoint,
                       config.provider.api_key_secret) as provider, \
            Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=errors, transient=True) as bar:
        task = bar.add_task("answers", total=None)
        evaluation = run_evaluation(provider, refs["base"], refs["candidate"], eval_config,
                                    target=config.provider.target, heldout=heldout, store=store,
                                    on_done=lambda done, total: bar.update(task, completed=done, total=total))
    record_evaluation(evaluation, run)
    decision = decide(evaluation, config.gate)
    record_decision(decision, evaluation, run, store)
    return decision, run.root
