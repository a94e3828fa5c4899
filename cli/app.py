"""The `loraflow` command: `run` and `config` here, every other noun in its own module of this package."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from cli import data as data_commands
from cli import evaluate as eval_commands
from cli import judge as judge_commands
from cli import lifecycle
from cli import models as models_commands
from cli.compare import compare
from cli.console import console, expected, fail
from cli.doctor import doctor
from cli.gateway import gateway
from cli.serve_model import serve_model
from cli.ui import DEFAULT_PORT, running_api
from providers.errors import ConfigError, LoraflowError

# Set before Prefect is imported (lazily, in `run`): no phone-home from the server or the client (whose
# first run prints a telemetry notice unless DO_NOT_TRACK is set), and our logger reaches the Prefect UI.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "loraflow")
# lines outside a flow run (the emulator's start) go to the console only, without a warning each
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# The ephemeral API's first start migrates a new database; on two slow cores that can pass Prefect's 20 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# While `loraflow ui` runs, runs started here report to its dashboard rather than to a second server.
if "PREFECT_API_URL" not in os.environ and (_ui_api := running_api()):
    os.environ["PREFECT_API_URL"] = _ui_api

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="LoRA fine-tuning pipelines: prepare, train, prove the gain against the base, promote.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect and check pipeline files.")
app.add_typer(config_app, name="config")
app.add_typer(data_commands.app, name="data")
app.add_typer(eval_commands.app, name="eval", help="Evaluate a model against a baseline on the pipeline's "
                                                    "suites and apply the gate, without training.")
app.add_typer(judge_commands.app, name="judge")
app.command()(doctor)
app.command()(compare)
app.add_typer(models_commands.app, name="models")
app.command()(models_commands.promote)
app.command()(models_commands.rollback)
app.command()(gateway)
app.command("serve-model")(serve_model)
app.command()(lifecycle.retrain)
app.command()(lifecycle.monitor)
app.command()(lifecycle.migrate)


@app.command()
def run(pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")],
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Prefect's own logs")] = False,
        approve_up_to: Annotated[float | None, typer.Option(
            help="approve an estimate up to this many USD ahead, instead of the approval form",
            min=0)] = None) -> None:
    """Run the finetune pipeline end to end and print the decision and the run directory."""
    from cli.display import RunDisplay, decision_panel
    from cli.rehearsal import emulator_for
    from cli.ui import prefect_api
    from flows.config import load_pipeline
    from flows.finetune import finetune

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        raise fail(exc) from None
    if approve_up_to is not None:
        budget = config.budget.model_copy(update={"approved_up_to_usd": approve_up_to})
        config = config.model_copy(update={"budget": budget})
    _prefect_console(logging.INFO if verbose else logging.CRITICAL)
    display = RunDisplay(console)
    logger = logging.getLogger("loraflow")
    logger.setLevel(logging.INFO)
    logger.addHandler(display)
    try:
        with prefect_api(), display, emulator_for(*config.endpoints):
            summary = finetune(config)
    except LoraflowError as exc:
        raise fail(exc) from None
    finally:
        logger.removeHandler(display)
    console.print(decision_panel(summary.decision, summary.model_id, str(summary.run_dir)))


def _prefect_console(level: int) -> None:
    """Prefect's own console lines would interleave with the progress display; the UI keeps them all."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(level)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the pipeline file."""
    from flows.config import pipeline_schema

    typer.echo(json.dumps(pipeline_schema(), indent=2))


@config_app.command("check")
def config_check(pipeline: Annotated[Path, typer.Argument(help="the pipeline YAML file")]) -> None:
    """Validate a pipeline file without running anything."""
    from flows.config import load_pipeline

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print(f"ok: pipeline {config.name!r}, provider {config.provider.name}, data {config.data.path}")


@app.command()
def deploy(prefect_file: Annotated[Path | None, typer.Option(help="default: deployments/prefect.yaml")]
           = None,
           pool: Annotated[str | None, typer.Option(
               help="work pool for every deployment (default: each one's own); deployments/pools/NAME.yaml "
                    "creates it when missing: loraflow-kubernetes, loraflow-docker")] = None,
           image: Annotated[str | None, typer.Option(help="image for a container pool (default: the "
                                                          "pool file's)")] = None,
           run_root: Annotated[str | None, typer.Option(
               envvar="LORAFLOW_RUN_ROOT", help="where every run keeps its run directory: a path on the "
                                                "worker, or s3://bucket/prefix or gs://bucket/prefix (then "
                                                "its Prefect results too)")] = None,
           ) -> None:
    """Register the deployments of deployments/prefect.yaml with the Prefect API (PREFECT_API_URL)."""
    from cli import deployments
    from tasks.runstore import check_location

    try:
        if run_root:
            check_location(run_root)
        specs = deployments.read_specs(prefect_file or deployments.PREFECT_FILE)
        names = deployments.deploy(specs, pool=pool, image=image, run_root=run_root)
    except ConfigError as exc:
        raise fail(exc) from None
    pools = sorted({pool} if pool else {spec.work_pool for spec in specs})
    console.print(f"registered {', '.join(names)}; start a worker: "
                  + "; ".join(f"prefect worker start --pool {name}" for name in pools))


@app.command()
def serve(prefect_file: Annotated[Path | None, typer.Option(help="default: deployments/prefect.yaml")] = None,
          limit: Annotated[int | None, typer.Option(help="most runs at once")] = None) -> None:
    """Serve the deployments of deployments/prefect.yaml from this process (no work pool, no worker)."""
    from cli import deployments
    from cli.rehearsal import emulator_for

    try:
        specs = deployments.read_specs(prefect_file or deployments.PREFECT_FILE)
    except ConfigError as exc:
        raise fail(exc) from None
    with emulator_for(*deployments.endpoints(specs)):
        deployments.serve(specs, limit=limit)


@app.command()
def ui(port: Annotated[int, typer.Option(help="dashboard port on 127.0.0.1")] = DEFAULT_PORT,
       prefect_file: Annotated[Path | None, typer.Option(help="default: deployments/prefect.yaml")] = None
       ) -> None:
    """Open the Prefect dashboard: a local server (state under $LORAFLOW_HOME/prefect), the deployments
    registered, and a worker for their runs. Ctrl-C or SIGTERM stops all of them."""
    from cli import ui as dashboard

    def ready(url: str, names: list[str]) -> None:
        console.print(f"dashboard: {url}  (deployments {', '.join(names)}; a worker is waiting for runs)")
        console.print(f"  run one: open {url}/v2/deployments, pick finetune, then Run > Custom run > Submit")
        console.print(f"  runs started from other shells report here too (PREFECT_API_URL={url}/api)")
        console.print(f"  server and worker logs: {dashboard.prefect_dir()}; Ctrl-C stops everything")

    console.print(f"starting the Prefect server on 127.0.0.1:{port} (the first start creates its database)")
    try:
        dashboard.ui(port, prefect_file, on_ready=ready)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print("stopped the worker and the Prefect server")


@app.command()
def emulator(port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: a free one)", min=0,
                                              max=65535)] = 8765,
             state_dir: Annotated[Path | None, typer.Option(help="keep files and jobs across restarts")]
             = None,
             api_key: Annotated[str | None, typer.Option(help="require this bearer key")] = None,
             speed: Annotated[float, typer.Option(help="job timeline speed multiplier")] = 1.0,
             latency_s: Annotated[float, typer.Option(help="seconds each chat completion takes")] = 0.0,
             requests_per_minute: Annotated[int | None, typer.Option(
                 help="answer 429 with Retry-After beyond this many chat completions a minute")] = None
             ) -> None:
    """Serve the OpenAI, Together, Vertex and Bedrock fine-tuning APIs on loopback for offline rehearsals."""
    from emulator import serve_forever

    serve_forever(port=port, state_dir=state_dir, api_key=api_key, speed=speed, latency_s=latency_s,
                  requests_per_minute=requests_per_minute)


_DEBUG = {"on": os.environ.get("LORAFLOW_DEBUG", "") not in ("", "0")}


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks of failures")] = False
             ) -> None:
    _DEBUG["on"] = _DEBUG["on"] or debug


def main() -> None:
    """`loraflow`: every command inside one error boundary (cli/console.py `expected`)."""
    try:
        app()
    except Exception as exc:  # sorted by `expected`; a bug is re-raised with its traceback
        problem = expected(exc)
        if problem is None or _DEBUG["on"]:
            raise
        raise SystemExit(fail(problem).exit_code) from None


if __name__ == "__main__":
    main()
