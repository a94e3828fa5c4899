"""`loraflow models list|show|register|set`, `loraflow promote NAME`, `loraflow rollback NAME[@ALIAS]`.

Every alias change is recorded with who (--by, default the OS user), when and why (--reason). Exit codes:
0 done, 2 configuration error (unknown model, version or alias; a bad weight).
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from cli.console import console, fail
from cli.ui import prefect_api
from providers.errors import ConfigError
from tasks.registry import Registry
from tasks.release.models import ModelRegistry

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Model versions, the champion/challenger aliases and their history.")

RegistryUrl = Annotated[str | None, typer.Option(
    "--registry", help="SQLAlchemy URL; default LORAFLOW_REGISTRY_URL or $LORAFLOW_HOME/registry.db")]
Reason = Annotated[str, typer.Option(help="why: kept in the audit trail")]
By = Annotated[str | None, typer.Option(help="who: default the OS user")]
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,99}"  # as a pipeline's name: models are registered under it


def _models(url: str | None) -> ModelRegistry:
    return ModelRegistry(Registry.open(url))


@app.command("list")
def list_models(registry: RegistryUrl = None) -> None:
    """Every registered model with its champion and challenger."""
    models = _models(registry)
    table = Table("model", "versions", "champion", "challenger (weight)")
    for name in models.names():
        aliases = models.aliases(name)
        champion = aliases.get("champion")
        challenger = aliases.get("challenger")
        table.add_row(name, str(len(models.versions(name))), f"v{champion[0]}" if champion else "-",
                      f"v{challenger[0]} ({challenger[1]:.0%})" if challenger else "-")
    console.print(table)


@app.command()
def show(name: str, registry: RegistryUrl = None) -> None:
    """A model's versions with their lineage, and the history of its aliases."""
    models = _models(registry)
    versions = models.versions(name)
    if not versions:
        known = ", ".join(models.names()) or "none yet"
        raise fail(ConfigError(f"no model {name!r}; allowed values: {known}"))
    aliases = {version: alias for alias, (version, _) in models.aliases(name).items()}
    table = Table("version", "alias", "served name", "base URL", "dataset", "job", "decision", "created")
    for v in versions:
        table.add_row(f"v{v.version}", aliases.get(v.version, ""), v.served_name, v.base_url or "-",
                      (v.dataset_sha256 or "-")[:12], v.job_id or "-", v.decision or "-",
                      f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}")
    console.print(table)
    history = Table("when", "who", "alias", "move", "weight", "why")
    for change in models.history(name):
        move = f"v{change.to_version}"
        if change.from_version:
            move = f"v{change.from_version} -> {move}"
        history.add_row(f"{change.changed_at:%Y-%m-%d %H:%M:%S}", change.changed_by, change.alias, move,
                        f"{change.weight:.0%}", change.reason)
    console.print(history)


@app.command()
def register(name: str, served_name: Annotated[str, typer.Option(help="the model name the upstream expects")],
             base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. vLLM's /v1")]
             = None,
             registry: RegistryUrl = None, by: By = None) -> None:
    """Register a version by hand (the finetune flow registers accepted candidates itself)."""
    if not re.fullmatch(NAME_PATTERN, name) or not served_name.strip():
        raise fail(ConfigError(f"model name {name!r}: use lowercase letters, digits, '_' and '-' (pattern "
                               f"{NAME_PATTERN}); --served-name must not be empty"))
    version = _models(registry).register(name, served_name, base_url=base_url, by=by)
    console.print(f"{name} v{version.version} -> {served_name}")


@app.command("set")
def set_alias(name: str, alias: str, version: int, reason: Reason,
              weight: Annotated[float, typer.Option(help="traffic share 0..1")] = 0.0,
              registry: RegistryUrl = None, by: By = None) -> None:
    """Point an alias at a version. The challenger's weight is its share of traffic while an experiment
    runs (`loraflow models canary NAME` starts one); without one the champion serves everyone."""
    models = _models(registry)
    try:
        models.set_alias(name, alias, version, weight=weight, reason=reason, by=by)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print(f"{name}@{alias} -> v{version}" + (f" at weight {weight:.0%}" if alias == "challenger"
                                                     else ""))
    console.print(traffic_now(models, name), highlight=False)


def traffic_now(models: ModelRegistry, name: str) -> str:
    """What the gateway does with NAME's traffic right now, in one line."""
    route = models.route(name)
    if route is None:
        return f"traffic: {name} has no champion, so the gateway answers 404 for it"
    champion = f"v{route.champion.version}"
    if route.challenger is None:
        return f"traffic: all of it to the champion {champion}"
    if route.experiment_id is None:
        return (f"traffic: all of it to the champion {champion}; the challenger v{route.challenger.version} "
                f"gets its weight only in an experiment: start one with `loraflow models canary {name}`")
    return (f"traffic: {route.weight:.0%} to the challenger v{route.challenger.version} and the rest to the "
            f"champion {champion} (experiment {route.experiment_key})")


def promote(name: Annotated[str, typer.Argument(help="the model whose challenger becomes champion")],
            reason: Reason, registry: RegistryUrl = None, by: By = None) -> None:
    """The challenger becomes champion at 100 %."""
    try:
        version = _models(registry).promote(name, reason=reason, by=by)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print(f"{name}@champion -> v{version}")


def rollback(target: Annotated[str, typer.Argument(help="NAME@challenger (weight 0) or NAME@champion (the "
                                                       "version before); NAME alone means NAME@challenger")],
             reason: Reason, registry: RegistryUrl = None, by: By = None) -> None:
    """Take a challenger out of traffic, or move the champion back to its previous version."""
    name, _, alias = target.partition("@")
    try:
        version = _models(registry).rollback(name, alias or "challenger", reason=reason, by=by)
    except ConfigError as exc:
        raise fail(exc) from None
    moved = f"v{version}" if alias == "champion" else "weight 0"
    console.print(f"{name}@{alias or 'challenger'}: {moved}")


@app.command()
def canary(name: str,
           ramp: Annotated[str, typer.Option(help="challenger shares, comma-separated")] = "0.01,0.05,0.1",
           approval: Annotated[bool, typer.Option(
               help="pause for approval in the Prefect UI before promoting")] = False,
           look_every_s: Annotated[float, typer.Option(help="seconds between looks")] = 300.0,
           primary: Annotated[str, typer.Option(help="outcome type of the primary metric")] = "judge_score",
           registry: RegistryUrl = None) -> None:
    """Run the canary of NAME's challenger to its end (a Prefect flow run): promote, roll back or stop."""
    from pydantic import ValidationError

    from flows.canary import canary as canary_flow
    from tasks.release.canary import CanaryPolicy

    if "challenger" not in _models(registry).aliases(name):
        raise fail(ConfigError(f"{name}@challenger is not set: nothing to canary (loraflow models list shows "
                               "what is registered)"))
    try:
        shares = [float(share) for share in ramp.split(",")]
        policy = CanaryPolicy(ramp=shares, approval=approval, primary=primary)
    except ValidationError as exc:
        raise fail(ConfigError(f"--ramp {ramp!r}: {exc.errors()[0]['msg']}")) from None
    except ValueError:
        raise fail(ConfigError(f"--ramp {ramp!r}: shares must be numbers, e.g. 0.01,0.05,0.1")) from None
    try:
        with prefect_api():
            status = canary_flow(name, policy, registry, look_every_s=look_every_s)
    except ConfigError as exc:
        raise fail(exc) from None
    console.print(f"{name}: canary ended {status}")
