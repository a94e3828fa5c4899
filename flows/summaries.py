"""What each flow returns. They live in this module, not beside their flows: a worker loads a flow from its
file (flows/finetune.py as module `finetune`), and a result pickled there must unpickle in any process that
has loraflow (the CLI, another worker reading a persisted result), so its classes need a package path."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.evaluation.decision import Decision
from tasks.lifecycle.monitor import Finding
from tasks.runstore import RunPath


@dataclass(frozen=True)
class RunSummary:
    run_dir: RunPath
    model_id: str
    decision: Decision


@dataclass(frozen=True)
class RetrainSummary:
    run_dir: RunPath
    winner: str
    reason: str
    version: int | None


@dataclass(frozen=True)
class MigrationSummary:
    run_dir: RunPath
    provider: str
    base_model: str
    winner: str
    reason: str
    version: int | None
    outcomes: dict[str, str]  # comparison label (vs-base, vs-champion) -> decision outcome


@dataclass(frozen=True)
class MonitorSummary:
    report_dir: RunPath
    findings: list[Finding]

    @property
    def alerts(self) -> list[str]:
        return sorted({f.kind for f in self.findings if f.severity == "alert"})
