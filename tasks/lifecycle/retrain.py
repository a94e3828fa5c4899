"""The quarterly retrain as plain functions: new data since the last run, the frozen eval set and the verdict.

New data comes from configured files or globs; a ledger beside the pipeline's runs (retrain-ledger.json) names
every file already folded in, by sha256, so the next run takes only what is new. The training input is the
champion's training set plus the new rows, prepared like any run (PII scrub, exact and near dedupe, so a new
row that repeats an existing one is dropped, and leakage removal against the eval set). The eval set stays the
champion's, frozen, so every comparison is on the same items.

The candidate, trained on the newest configured base, answers the frozen set against the current champion and
against that base without fine-tuning (the candidate's answers are cached per model/item/decoding, so it is
paid once). Only a candidate the gate accepts against both goes on to the canary; the verdict says who won
and why.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from providers.base import ChatModel, ModelRef
from providers.errors import ConfigError
from tasks.data.config import DataConfig
from tasks.data.stage import prepare
from tasks.data.target import DataTarget
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.evaluation.decision import Decision
from tasks.evaluation.evaluate import evaluate_models
from tasks.evaluation.gate import decide_promotion
from tasks.registry import Registry, create_tables
from tasks.release.models import ModelAlias, ModelRegistry, ModelVersion
from tasks.release.traffic import Outcome
from tasks.rundir import RunDir, atomic_write, sha256_file, write_json
from tasks.runstore import RunPath, run_path

LEDGER = "retrain-ledger.json"
_TRAFFIC = "traffic"  # the ledger's entry for captured gateway traffic: the newest exchange taken


class TrafficSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capture: str = Field(description="glob of the gateway's capture files (loraflow gateway --capture-dir)")
    keep: Literal["thumbs_up", "not_thumbs_down"] = Field(
        default="thumbs_up", description="thumbs_up: only exchanges a user approved; not_thumbs_down: every "
                                         "exchange no user rejected")


class RetrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list,
                               description="chat JSONL files or globs of new data (relative to the "
                                           "working directory); files already folded in by an earlier "
                                           "retrain are skipped")
    base_model: str | None = Field(default=None, description="the newest base model to retrain on; default: "
                                                             "training.base_model")
    traffic: TrafficSource | None = Field(default=None, description="the gateway's captured exchanges, kept "
                                                                    "by the feedback recorded for them")


@dataclass(frozen=True)
class NewData:
    """Rows not seen by an earlier retrain, gathered into one file of the run."""

    path: Path
    rows: int
    files: dict[str, str] = field(default_factory=dict)  # sha256 -> source path
    traffic_until: float | None = None  # the newest captured exchange taken


@dataclass(frozen=True)
class Verdict:
    winner: str  # candidate | champion | base
    promote: bool
    reason: str
    decision: Decision  # what the registry records: accepted only when `promote`


def champion_version(registry: Registry, name: str) -> ModelVersion | None:
    ModelRegistry(registry)  # creates the model tables of a registry that has none yet
    with Session(registry.engine, expire_on_commit=False) as session:
        return session.scalar(select(ModelVersion).join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
                              .where(ModelAlias.name == name, ModelAlias.alias == "champion"))


def champion_ref(version: ModelVersion) -> ModelRef:
    return ModelRef(provider=version.provider or "unknown", model_id=version.served_name,
                    base_model=version.base_model or version.served_name, job_id=version.job_id)


def champion_data(version: ModelVersion | None) -> tuple[RunPath, RunPath] | None:
    """The champion's prepared (train, eval) files, from the run that produced it (on this disk or in the
    object store), when they are still there; `RunDir.fetch` makes local copies where a file must be real."""
    if version is None or not version.eval_run:
        return None
    data = run_path(version.eval_run) / "data"
    train, held = data / "train.jsonl", data / "eval.jsonl"
    return (train, held) if train.is_file() and held.is_file() else None


def read_ledger(runs: RunPath) -> dict[str, dict]:
    path = runs / LEDGER
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def captured_rows(source: TrafficSource, engine: Engine,
                  since: float | None) -> tuple[list[str], float | None]:
    """Chat JSONL lines of captured exchanges newer than `since` that the feedback keeps, and the newest
    time."""
    records = [json.loads(line) for path in sorted(glob.glob(source.capture, recursive=True))
               for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [r for r in records if since is None or r["ts"] > since]
    feedback: dict[str, set[str]] = {}
    create_tables(engine, [Outcome.__table__])
    with Session(engine) as session:
        rows = session.execute(select(Outcome.request_id, Outcome.type).where(
            Outcome.request_id.in_([r["request_id"] for r in records])))
        for request_id, kind in rows:
            feedback.setdefault(request_id, set()).add(kind)
    kept = [r for r in records if "thumbs_down" not in feedback.get(r["request_id"], set())
            and (source.keep == "not_thumbs_down" or "thumbs_up" in feedback.get(r["request_id"], set()))]
    newest = max((r["ts"] for r in records), default=since)
    return [json.dumps({"messages": r["messages"]}, ensure_ascii=False) for r in kept], newest


def gather_new_data(config: RetrainConfig, run: RunDir, runs: RunPath, engine: Engine | None = None
                    ) -> NewData:
    """Every source file whose content an earlier retrain has not folded in, and the captured exchanges since
    the last retrain that the feedback keeps, concatenated into data/new.jsonl."""
    seen = read_ledger(runs)
    files: dict[str, str] = {}
    for pattern in config.sources:
        matched = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matched or not all(Path(p).is_file() for p in matched):
            raise ConfigError(f"retrain.sources: {pattern!r} matches no file")
        for path in matched:
            digest = sha256_file(Path(path))
            if digest not in seen and digest not in files:
                files[digest] = str(Path(path).resolve())
    lines = [line for path in files.values() for line in Path(path).read_text(encoding="utf-8").splitlines()
             if line.strip()]
    until = None
    if config.traffic is not None and engine is not None:
        captured, until = captured_rows(config.traffic, engine, seen.get(_TRAFFIC, {}).get("until"))
        lines += captured
    out = run.work_data / "new.jsonl"
    atomic_write(out, "".join(line + "\n" for line in lines))
    run.publish(out)
    run.record("new_data", {"rows": len(lines), "files": files, "traffic_until": until})
    return NewData(out, len(lines), files, until)


def mark_consumed(new: NewData, run: RunDir, runs: RunPath) -> None:
    """After a finished retrain: its source files count as seen (a failed run leaves them for the next)."""
    ledger = read_ledger(runs)
    now = datetime.now(UTC).isoformat()
    for digest, path in new.files.items():
        ledger.setdefault(digest, {"path": path, "run": str(run.root), "at": now})
    if new.traffic_until is not None:
        ledger[_TRAFFIC] = {"until": new.traffic_until, "run": str(run.root), "at": now}
    write_json(runs / LEDGER, ledger)


def retrain_data(data: DataConfig, existing: tuple[Path, Path], new: NewData, run: RunDir) -> DataConfig:
    """The data section for the retrain: existing train rows then the new rows, evaluated on the frozen eval
    set."""
    train, held = existing
    combined = run.work_data / "retrain-input.jsonl"
    text = train.read_text(encoding="utf-8")
    atomic_write(combined, text + ("" if not text or text.endswith("\n") else "\n")
                 + new.path.read_text(encoding="utf-8"))
    run.publish(combined)
    return data.model_copy(update={"path": combined, "eval_path": held})


def compare_on_frozen_set(provider: ChatModel, baseline: ModelRef, candidate: ModelRef,
                          eval_config: EvalConfig, gate: GateConfig, run: RunDir, label: str, *, target: str,
                          heldout: Path, registry: Registry) -> Decision:
    """Evaluate and gate `candidate` against `baseline` into the run's `label` folder."""
    sub = run.sub(label)
    evaluation = evaluate_models(provider, baseline, candidate, eval_config, sub, target=target,
                                 heldout=heldout, registry=registry)
    return decide_promotion(evaluation, gate, sub, registry)


def _primary(decision: Decision) -> str:
    found = [c for c in decision.comparisons if c.metric == decision.primary]
    return found[0].describe() if found else decision.reason


def judge_retrain(vs_base: Decision, vs_champion: Decision | None) -> Verdict:
    """Promote only a candidate accepted against both; otherwise say which of the others holds and why."""
    if not vs_base.accepted:
        caught_up = vs_base.outcome not in ("invalid", "underpowered")
        reason = (f"base caught up: the newest base alone is as good as the fine-tune ({vs_base.outcome}; "
                  f"{_primary(vs_base)}); consider retiring the adapter through the canary with the base as "
                  "challenger" if caught_up else
                  f"the comparison with the newest base is {vs_base.outcome}: {vs_base.reason}")
        return Verdict("base" if caught_up else "champion", False, reason, vs_base)
    if vs_champion is not None and not vs_champion.accepted:
        return Verdict("champion", False,
                       f"the champion holds: the candidate beats the newest base but not the champion "
                       f"({vs_champion.outcome}; {_primary(vs_champion)})", vs_champion)
    against = "the newest base" + (" and the champion" if vs_champion is not None else " (no champion yet)")
    shown = "; ".join(_primary(d) for d in (vs_base, vs_champion) if d is not None)
    return Verdict("candidate", True, f"the candidate beats {against}: {shown}", vs_champion or vs_base)


def render_summary(verdict: Verdict, *, base_model: str, champion: str | None, new_rows: int, candidate: str,
                   version: int | None) -> str:
    lines = [f"# Retrain: {verdict.winner} wins", "", verdict.reason, "",
             "| | |", "|---|---|", f"| newest base | `{base_model}` |",
             f"| champion | `{champion or '(none)'}` |",
             f"| candidate | `{candidate}` |", f"| new training rows | {new_rows} |",
             f"| promoted | {f'v{version} as challenger (canary next)' if version else 'no'} |"]
    return "\n".join(lines) + "\n"


def existing_data(data: DataConfig, champion: ModelVersion | None, run: RunDir, target: DataTarget
                  ) -> tuple[Path, Path]:
    """The champion's (train, eval) files; with no champion, the pipeline's data prepared and split as
    usual."""
    found = champion_data(champion)
    if found is not None:
        return run.fetch(found[0]), run.fetch(found[1])
    baseline = prepare(data, run.sub("baseline"), target)
    return baseline.train_path, baseline.eval_path


def nothing_new(new: NewData, champion: ModelVersion | None, base_model: str) -> str | None:
    """Why a retrain would only repeat the champion's training (no new rows, same base), or None."""
    if new.rows == 0 and champion is not None and champion.base_model == base_model:
        return f"nothing new: no new rows in retrain.sources and the champion is already on {base_model}"
    return None
