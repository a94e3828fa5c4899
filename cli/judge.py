"""`loraflow judge calibrate PIPELINE.yaml LABELS.jsonl --grader SUITE/ID`: how far to trust a judge.

The judge grader named by --grader (configured in the pipeline's eval suites, judged by `eval.judge`)
grades every human-labelled example; Cohen's kappa between its verdicts and the labels is stored in the
registry with the grader's name, version, judge model and prompt hash, and evaluation reports show it.
Exit codes: 0 done, 1 provider error, 2 configuration error, 3 kappa below --min-kappa.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.console import console, errors, fail
from providers.errors import ConfigError, LoraflowError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Calibrate judge graders against human labels.")


def _grader_config(config, wanted: str):
    """The (suite, grader config) that `wanted` names: SUITE/ID, or an ID unique across suites."""
    found = [(s, g) for s in config.eval.effective_suites for g in s.graders or []
             if wanted in (f"{s.name}/{g.key}", g.key)]
    if len(found) != 1:
        choices = [f"{s.name}/{g.key}" for s in config.eval.effective_suites for g in s.graders or []
                   if g.name in ("llm_judge", "llm_pairwise", "refusal")]
        why = "is ambiguous" if found else "names no grader"
        allowed = ", ".join(choices) or "none (no judge grader)"
        raise ConfigError(f"--grader {wanted!r} {why}; allowed values: {allowed}")
    return found[0]


@app.command()
def calibrate(
    pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file (eval.judge, the suites)")],
    labels: Annotated[Path, typer.Argument(help="JSONL of human-labelled examples")],
    grader: Annotated[str, typer.Option(help="SUITE/GRADER_ID of a judge grader")],
    min_kappa: Annotated[float | None, typer.Option(help="exit 3 when kappa is below this (0.6 is usual)")]
    = None,
) -> None:
    """Score a judge grader against human labels (Cohen's kappa) and store the agreement."""
    from flows.config import load_pipeline
    from tasks.evaluation.calibration import calibrate as run_calibration
    from tasks.evaluation.calibration import describe, load_labels, store_calibration
    from tasks.evaluation.graders import build_grader
    from tasks.evaluation.judging import make_judge
    from tasks.evaluation.store import EvalStore
    from tasks.registry import Registry

    try:
        config = load_pipeline(pipeline)
        _, chosen = _grader_config(config, grader)
        if config.eval.judge is None:
            raise ConfigError("eval.judge is not configured: there is no judge to calibrate")
        examples = load_labels(labels, chosen.name)
        store = EvalStore(Registry.open(config.registry_url).engine)
        judge, _ = make_judge(config.eval.judge, store=store)
        params = {**chosen.params, **({"use_judge": True} if chosen.name == "refusal" else {})}
        result = run_calibration(build_grader(chosen.name, judge, **params), examples)
        store_calibration(store, result, labels)
    except LoraflowError as exc:
        raise fail(exc) from None
    title = f"{grader} v{result.version}: judge {result.judge_model}, prompt {result.prompt_sha256[:12]}"
    table = Table(title=title)
    for column in ("examples", "unscored", "agreement", "kappa"):
        table.add_column(column, justify="right")
    table.add_row(str(result.n), str(result.unscored), f"{result.agreement:.1%}",
                  f"{result.kappa:.3f} ({describe(result.kappa)})")
    console.print(table)
    console.print(f"stored in the registry with {result.grader} v{result.version}")
    if min_kappa is not None and result.kappa < min_kappa:
        errors.print(f"kappa {result.kappa:.3f} is below --min-kappa {min_kappa}")
        raise typer.Exit(3)
