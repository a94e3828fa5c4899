"""The daily monitor: online metrics, input drift, has the newest base closed the gap, provider
retirements."""

from __future__ import annotations

from datetime import UTC, date, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.config import Pipeline
from flows.summaries import MonitorSummary
from providers.base import ModelRef
from tasks.connection import open_provider
from tasks.data.target import DataTarget
from tasks.lifecycle.monitor import (
    drift_findings,
    gap_finding,
    online_findings,
    online_metrics,
    publish,
    read_window,
    reference_prompts,
    render_report,
    retirement_check,
)
from tasks.lifecycle.retrain import champion_data, champion_ref, champion_version, compare_on_frozen_set
from tasks.progress import report_to_prefect
from tasks.registry import Registry
from tasks.rundir import RunDir, atomic_write
from tasks.runstore import absolute


@flow(name="monitor")
def monitor(pipeline: Pipeline, today: date | None = None) -> MonitorSummary:
    report_to_prefect()
    now, config, cfg = datetime.now(UTC), pipeline.monitor, pipeline.provider
    report = RunDir(absolute(pipeline.runs) / "monitor" / f"{now:%Y%m%dT%H%M%SZ}")
    registry = Registry.open(pipeline.registry_url)
    champion = champion_version(registry, pipeline.name)
    frozen = champion_data(champion)
    metrics = online_metrics(registry.engine, pipeline.name, now, config.online.window_hours)
    findings = online_findings(metrics, config.online)
    drift = []
    if config.inputs:
        counter = DataTarget(cfg.name, pipeline.training.base_model).token_counter()
        reference = reference_prompts(pipeline.data.path, frozen)
        drift, found = drift_findings(reference, read_window(config.inputs), counter, config.drift)
        findings += found
    if config.newest_base and champion is not None and frozen is not None:
        newest = ModelRef(provider=cfg.name, model_id=config.newest_base, base_model=config.newest_base)
        decision = compare_on_frozen_set(open_provider(cfg), champion_ref(champion), newest, pipeline.eval,
                                         pipeline.gate, report, "gap", target=cfg.target,
                                         heldout=report.fetch(frozen[1]), registry=registry)
        findings.append(gap_finding(decision, champion.served_name, config.newest_base, config.gap_margin))
    models = [pipeline.training.base_model]
    if champion is not None and champion.base_model:
        models.append(champion.base_model)
    findings += retirement_check(pipeline.model_dump(mode="json"), config, models, today or now.date(),
                                 report.root)
    publish(pipeline.name, findings, emit_event)
    markdown = render_report(pipeline.name, findings, metrics, drift, now)
    atomic_write(report.root / "report.md", markdown)
    report.record("monitor", {"findings": [vars(f) for f in findings], "online": metrics,
                              "drift": [vars(d) for d in drift]})
    summary = MonitorSummary(report.root, findings)
    alerts = ", ".join(summary.alerts) or "none"
    create_markdown_artifact(markdown, key="monitor-report",
                             description=f"{len(findings)} findings; alerts: {alerts}")
    report.close()
    return summary
