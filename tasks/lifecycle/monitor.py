"""The daily monitor as plain functions: online metrics, input drift, base-model gap, provider retirements.

Each check returns findings; a finding at `warn` or `alert` becomes a Prefect event `loraflow.monitor.<kind>`
(resource `loraflow.pipeline.<name>`, so an automation can page or start a retrain) and a line in the
`monitor-report` markdown artifact. Online metrics come from what the gateway logged for the pipeline's
experiments (exposures and outcomes in the registry); drift compares a window of recent prompts (configured
files, e.g. the gateway's opt-in capture) with the champion's training prompts.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from providers.catalog import catalog_providers, model_facts, models
from providers.errors import ConfigError
from tasks.data.tokens import TokenCounter
from tasks.evaluation.compare import Comparison
from tasks.evaluation.decision import Decision
from tasks.lifecycle.drift import DriftConfig, FeatureDrift, input_drift
from tasks.lifecycle.migrate import migration_command
from tasks.registry import create_tables
from tasks.release.models import Experiment
from tasks.release.traffic import Exposure, Outcome
from tasks.rundir import atomic_write
from tasks.runstore import RunPath

Severity = Literal["info", "warn", "alert"]
_FEEDBACK = ("thumbs_up", "thumbs_down")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OnlineLimits(_Section):
    window_hours: float = Field(default=24, gt=0, description="how far back the online metrics look")
    max_error_rate: float = Field(default=0.02, ge=0, le=1, description="share of 5xx answers")
    max_p95_latency_ms: float | None = Field(default=None, gt=0)
    max_thumbs_down_rate: float = Field(default=0.2, ge=0, le=1, description="thumbs down / all thumbs")
    min_judge_score: float | None = Field(default=None, ge=0, le=1, description="mean sampled judge score")


class MigrationTarget(_Section):
    provider: str
    base_model: str
    options: dict[str, Any] = Field(default_factory=dict, description="the target provider's options "
                                                                      "(loraflow migrate uses them)")


class MonitorConfig(_Section):
    inputs: list[str] = Field(default_factory=list, description="chat JSONL files or globs of recent "
                                                                "production prompts (the drift window)")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    online: OnlineLimits = Field(default_factory=OnlineLimits)
    newest_base: str | None = Field(default=None,
                                    description="a newer base model to test against the champion on the "
                                                "frozen eval set (has it closed the gap?)")
    gap_margin: float = Field(default=0.02, ge=0, le=1,
                              description="the base closed the gap when the CI lower bound of "
                                          "(base - champion) is above -margin")
    retirement_warn_days: list[int] = Field(default_factory=lambda: [90, 30], min_length=1)
    migrate_to: MigrationTarget | None = Field(default=None, description="where a migration run would go")


@dataclass(frozen=True)
class Finding:
    kind: str  # online | drift | gap | retirement
    severity: Severity
    message: str
    payload: dict[str, Any] = field(default_factory=dict)


def prompts_of(lines: list[str]) -> list[str]:
    """The last user turn of each chat JSONL line (a bare {"prompt": ...} line is taken as it is)."""
    prompts = []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if isinstance(record.get("prompt"), str):
            prompts.append(record["prompt"])
            continue
        users = [m.get("content") for m in record.get("messages", []) if m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            prompts.append(users[-1])
    return prompts


def read_window(patterns: list[str]) -> list[str]:
    paths = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched:
            raise ConfigError(f"monitor.inputs: {pattern!r} matches no file")
        paths += matched
    return prompts_of([line for path in paths
                       for line in Path(path).read_text(encoding="utf-8").splitlines()])


def drift_findings(reference: list[str], current: list[str], counter: TokenCounter, config: DriftConfig
                   ) -> tuple[list[FeatureDrift], list[Finding]]:
    features = input_drift(reference, current, counter, config)
    findings = [Finding("drift", "alert" if f.level == "alert" else "warn",
                        f"input drift on {f.feature}: PSI {f.psi:.3f} "
                        f"(warn {config.warn}, alert {config.alert}); {f.detail}",
                        {"feature": f.feature, "psi": f.psi, "n": f.current_n})
                for f in features if f.level in ("warn", "alert")]
    return features, findings


def online_metrics(engine: Any, name: str, now: datetime,
                   window_hours: float) -> dict[str, float | int | None]:
    """Requests, error rate, p95 latency, mean judge score and thumbs-down rate over the pipeline's
    experiments."""
    since = now - timedelta(hours=window_hours)
    create_tables(engine, [Experiment.__table__, Exposure.__table__, Outcome.__table__])
    with Session(engine) as session:
        ids = list(session.scalars(select(Experiment.id).where(Experiment.name == name)))
        rows = list(session.scalars(select(Exposure).where(Exposure.experiment_id.in_(ids),
                                                           Exposure.ts >= since)))
        outcomes = list(session.execute(select(Outcome.type, Outcome.value).join(
            Exposure, Exposure.request_id == Outcome.request_id).where(
            Exposure.experiment_id.in_(ids), Outcome.ts >= since)))
    done = [e for e in rows if e.http_status is not None]
    latencies = [e.latency_ms for e in done if e.latency_ms is not None]
    judged = [v for kind, v in outcomes if kind == "judge_score"]
    thumbs = [kind for kind, _ in outcomes if kind in _FEEDBACK]
    return {"requests": len(done),
            "error_rate": sum(e.http_status >= 500 for e in done) / len(done) if done else None,
            "p95_latency_ms": float(np.percentile(latencies, 95)) if latencies else None,
            "judge_score": float(np.mean(judged)) if judged else None, "judged": len(judged),
            "thumbs_down_rate": thumbs.count("thumbs_down") / len(thumbs) if thumbs else None,
            "feedback": len(thumbs)}


def online_findings(metrics: dict[str, Any], limits: OnlineLimits) -> list[Finding]:
    checks = [("error_rate", limits.max_error_rate, "above", "error rate"),
              ("p95_latency_ms", limits.max_p95_latency_ms, "above", "p95 latency (ms)"),
              ("thumbs_down_rate", limits.max_thumbs_down_rate, "above", "thumbs-down rate"),
              ("judge_score", limits.min_judge_score, "below", "mean judge score")]
    findings = []
    for key, limit, side, label in checks:
        value = metrics.get(key)
        if value is None or limit is None:
            continue
        if (value > limit) if side == "above" else (value < limit):
            findings.append(Finding("online", "alert", f"{label} {value:.3g} is {side} the limit {limit:.3g} "
                                                       f"over {metrics['requests']} requests", {key: value}))
    return findings


def gap_finding(decision: Decision, champion: str, base: str, margin: float) -> Finding:
    """`decision` compares the champion (as base) with the newest base (as candidate) on the frozen eval
    set."""
    primary: Comparison = next(c for c in decision.comparisons if c.metric == decision.primary)
    closed = primary.ci_low > -margin
    verdict = "has closed the gap" if closed else "has not closed the gap"
    message = (f"the newest base {base} {verdict} with the champion {champion}: {primary.metric} "
               f"{primary.candidate_value:.1%} vs {primary.base_value:.1%}, "
               f"delta {primary.delta * 100:+.1f} pp "
               f"[{primary.ci_low * 100:+.1f}, {primary.ci_high * 100:+.1f}] (margin -{margin * 100:.0f} pp)")
    if closed:
        message += "; run the retrain: if the fine-tune no longer beats the base, retire the adapter"
    return Finding("gap", "warn" if closed else "info", message,
                   {"closed": closed, "delta": primary.delta, "ci_low": primary.ci_low, "base": base})


def retirement_findings(provider: str, models: list[str], today: date,
                        warn_days: list[int]) -> list[Finding]:
    """Warn when a model stops taking jobs or stops serving within the largest of `warn_days`; alert within
    the smallest (or once the day has passed)."""
    findings = []
    for model in dict.fromkeys(models):
        facts = model_facts(provider, model)
        if facts is None:
            continue
        for what, day in (("stops serving (its fine-tunes too)", facts.retires),
                          ("takes no new fine-tuning jobs", facts.last_new_job)):
            if day is None:
                continue
            left = (day - today).days
            if left > max(warn_days):
                continue
            severity: Severity = "alert" if left <= min(warn_days) else "warn"
            when = f"in {left} days" if left >= 0 else f"since {-left} days"
            message = f"{provider} {model} {what} on {day} ({when}; source: catalog as of {facts.as_of})"
            findings.append(Finding("retirement", severity, message,
                                    {"provider": provider, "model": model, "date": str(day),
                                     "days_left": left}))
    return findings


def publish(name: str, findings: list[Finding], emit: Callable[..., object]) -> None:
    """One Prefect event per warn/alert finding."""
    for finding in findings:
        if finding.severity == "info":
            continue
        emit(event=f"loraflow.monitor.{finding.kind}",
             resource={"prefect.resource.id": f"loraflow.pipeline.{name}", "prefect.resource.name": name},
             payload={"severity": finding.severity, "message": finding.message, **finding.payload})


def render_report(name: str, findings: list[Finding], metrics: dict[str, Any], drift: list[FeatureDrift],
                  now: datetime) -> str:
    worst = max((f.severity for f in findings), key=("info", "warn", "alert").index, default="info")
    lines = [f"# Monitor {name}: {'all clear' if worst == 'info' else worst.upper()}",
             "", f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC", ""]
    lines += [f"- **{f.severity}** ({f.kind}): {f.message}" for f in findings] or ["- nothing to report"]
    lines += ["", "## Online", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {'-' if v is None else f'{v:.4g}'} |" for k, v in metrics.items()]
    lines += ["", "## Input drift (PSI)", "", "| feature | PSI | level | n ref | n now | detail |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {d.feature} | {d.psi:.3f} | {d.level} | {d.reference_n} | {d.current_n} | {d.detail} |"
              for d in drift] or ["| (no window configured) | | | | | |"]
    return "\n".join(lines) + "\n"


def alternatives(provider: str, today: date, horizon_days: int, limit: int = 3) -> list[str]:
    """Catalog models on other providers that serve beyond the horizon (or name no end): migration targets."""
    found = []
    for other in catalog_providers():
        if other == provider:
            continue
        for model in models(other):
            facts = model_facts(other, model)
            ends = [d for d in (facts.retires, facts.last_new_job) if d is not None]
            if all((d - today).days > horizon_days for d in ends):
                found.append(f"{other}:{model}")
                break
    return found[:limit]


def _replacement_hint(pipeline: dict[str, Any], models_: list[str], today: date, horizon: int) -> str:
    """The command that moves the pipeline to the replacement its vendor recommends when the catalog lists it
    as fine-tunable there, else to a catalog model on another provider."""
    provider, name = pipeline["provider"]["name"], pipeline["name"]
    said = ""
    for model in models_:
        facts = model_facts(provider, model)
        if facts is None or not facts.replacement:
            continue
        tunable = [m for m in facts.replacement if m in models(provider)]
        recommended = f"{provider} recommends {' or '.join(facts.replacement)}"
        if tunable:
            return f"{recommended}: {migration_command(name, tunable[0])}"
        said = f"{recommended}, which the catalog does not list as fine-tunable; "
    options = [*_same_model_elsewhere(provider, models_, today, horizon),
               *alternatives(provider, today, horizon)]
    if options:
        other, model = options[0].split(":", 1)
        return (f"{said}move it, gated against the champion: {migration_command(name, model, other)} "
                f"(catalog models serving beyond the horizon: {', '.join(options)})")
    return f"{said}set monitor.migrate_to; no catalog model serves beyond the horizon"


def _same_model_elsewhere(provider: str, models_: list[str], today: date, horizon: int) -> list[str]:
    """The same base on another provider that serves it beyond the horizon (OpenAI's models on Azure)."""
    found = []
    for other in catalog_providers():
        for model in models_:
            facts = model_facts(other, model) if other != provider else None
            ends = [] if facts is None else [d for d in (facts.retires, facts.last_new_job) if d is not None]
            if facts is not None and all((d - today).days > horizon for d in ends):
                found.append(f"{other}:{model}")
    return found


def migration_pipeline(pipeline: dict[str, Any], target: MigrationTarget) -> dict[str, Any]:
    """The same dataset, eval suites and gate on another provider: a pipeline file for `loraflow run`."""
    changed = json.loads(json.dumps(pipeline, default=str))
    changed["name"] = f"{pipeline['name']}-{target.provider}"
    changed["provider"] = {"name": target.provider, "options": target.options}
    changed["training"] = {**changed["training"], "base_model": target.base_model}
    for key in ("monitor", "retrain"):
        changed.pop(key, None)
    return changed


def reference_prompts(data_path: Path, frozen: tuple[RunPath, RunPath] | None) -> list[str]:
    """The training prompts the drift window is held against: the champion's training set, else the
    pipeline's."""
    path = frozen[0] if frozen is not None else data_path
    return prompts_of(path.read_text(encoding="utf-8").splitlines())


def retirement_check(pipeline: dict[str, Any], config: MonitorConfig, models: list[str], today: date,
                     out_dir: RunPath) -> list[Finding]:
    """Retirement findings; when there are any, a migration pipeline file (same data, eval and gate on
    `monitor.migrate_to`) is written to `out_dir` and offered, or else catalog alternatives are named."""
    provider = pipeline["provider"]["name"]
    findings = retirement_findings(provider, models, today, config.retirement_warn_days)
    if not findings:
        return []
    if config.migrate_to is not None:
        path = out_dir / "migration.yaml"
        atomic_write(path, yaml.safe_dump(migration_pipeline(pipeline, config.migrate_to), sort_keys=False))
        target = config.migrate_to
        command = migration_command(pipeline["name"], target.base_model, target.provider)
        hint = (f"move it, gated against the champion: {command} (or train the migration pipeline without "
                f"the gate: loraflow run {path})")
    else:
        hint = _replacement_hint(pipeline, models, today, max(config.retirement_warn_days))
    return [Finding(f.kind, f.severity, f"{f.message}; {hint}", f.payload) for f in findings]
