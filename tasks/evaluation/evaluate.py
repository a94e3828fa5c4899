"""The evaluation step: run every suite on base and candidate, keep every output in the run directory.

`evaluate_and_record` is the plain function (the `loraflow eval` command calls it); `evaluate_models` is the
task the finetune flow calls, the same step with milestones in the run log. What comes back, an `Evaluation`,
is everything the gate needs: per-item results, what each grader is (versions, judge, human agreement), and
what the run paid for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task

from providers.base import ChatModel, Decoding, ModelRef
from tasks.evaluation.calls import AnswerSource, ModelCaller
from tasks.evaluation.config import EvalConfig, Role
from tasks.evaluation.judging import make_judge
from tasks.evaluation.ratelimit import TokenBucket
from tasks.evaluation.reuse import EarlierRuns
from tasks.evaluation.runner import ROLES, ItemResult, run_suites, to_json_line
from tasks.evaluation.store import EvalStore
from tasks.evaluation.suites import GraderInfo, Suite, build_suites
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone, progress
from tasks.registry import Registry
from tasks.rundir import RunDir, atomic_write
from tasks.runstore import RunPath

_PROMPT_CHARS = 300


@dataclass(frozen=True)
class ItemFacts:
    key: str
    prompt: str
    slice: str | None = None
    critical: bool = False


@dataclass(frozen=True)
class SuiteSummary:
    name: str
    role: Role
    source: str
    primary: str
    graders: dict[str, GraderInfo]
    items: list[ItemFacts]
    slice_by: str | None = None

    @classmethod
    def of(cls, suite: Suite) -> SuiteSummary:
        facts = [ItemFacts(i.key, i.prompt_text[:_PROMPT_CHARS],
                           None if suite.slice_by is None else str(i.metadata.get(suite.slice_by, "(none)")),
                           bool(i.metadata.get("critical", False))) for i in suite.items]
        return cls(suite.name, suite.role, suite.source, suite.primary, suite.info, facts, suite.slice_by)


@dataclass
class Evaluation:
    """Base and candidate on the same items with the same decoding, graded; `usage` counts what was paid."""

    models: dict[str, ModelRef]
    decoding: Decoding
    samples: int
    suites: list[SuiteSummary]
    results: list[ItemResult]
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def answer_errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def grade_errors(self) -> int:
        return sum(g.error is not None for r in self.results for g in r.grades.values())

    @property
    def grades(self) -> int:
        return sum(len(r.grades) for r in self.results)


def _usage(prefix: str, caller: ModelCaller) -> dict[str, int]:
    return {f"{prefix}calls": caller.calls, f"{prefix}cache_hits": caller.cache_hits,
            f"{prefix}retries": caller.retries, f"{prefix}failures": caller.failures}


def run_evaluation(model: ChatModel, base: ModelRef, candidate: ModelRef, config: EvalConfig, *, target: str,
                   heldout: Path | None = None, store: EvalStore | None = None,
                   judge: ChatModel | None = None, on_done: Callable[[int, int], None] | None = None,
                   earlier: AnswerSource | None = None) -> Evaluation:
    """Answer and grade every suite of `config` with both models on `model` (a provider at `target`).

    `judge` replaces the judge model the config would build (tests inject a scripted one); `earlier` holds
    answers the store may have lost (earlier run directories).
    """
    judge_protocol, judge_caller = (make_judge(config.judge, judge, store=store) if config.judge
                                    else (None, None))
    suites = build_suites(config, heldout=heldout, judge=judge_protocol, store=store)
    limiter = TokenBucket.per_minute(config.requests_per_minute) if config.requests_per_minute else None
    caller = ModelCaller(model, target, store=store, limiter=limiter, earlier=earlier)
    results = run_suites(caller, dict(zip(ROLES, (base, candidate), strict=True)), suites, config.decoding,
                         samples=config.samples, concurrency=config.concurrency, on_done=on_done)
    usage = (_usage("", caller) | {"reused": caller.reused}
             | (_usage("judge_", judge_caller) if judge_caller else {}))
    return Evaluation(models={"base": base, "candidate": candidate}, decoding=config.decoding,
                      samples=config.samples, suites=[SuiteSummary.of(s) for s in suites], results=results,
                      usage=usage)


def record_evaluation(evaluation: Evaluation, run: RunDir) -> RunPath:
    """eval/outputs.jsonl (every answer and grade) and the manifest's `evaluation` section."""
    outputs = run.eval_dir / "outputs.jsonl"
    content = "".join(to_json_line(r) + "\n" for r in evaluation.results).encode("utf-8")
    atomic_write(outputs, content)
    run.record("evaluation", {
        "models": {role: ref.model_dump(mode="json") for role, ref in evaluation.models.items()},
        "decoding": evaluation.decoding.model_dump(mode="json"), "samples": evaluation.samples,
        "suites": {s.name: {"role": s.role, "items": len(s.items), "source": s.source, "primary": s.primary,
                            "graders": {gid: vars(g) for gid, g in s.graders.items()}}
                   for s in evaluation.suites},
        "answer_errors": evaluation.answer_errors, "grade_errors": evaluation.grade_errors,
        "usage": evaluation.usage, "outputs": str(outputs.relative_to(run.root)),
        "outputs_sha256": hashlib.sha256(content).hexdigest(),  # of the bytes written: no read back
    })
    return outputs


def evaluate_and_record(model: ChatModel, base: ModelRef, candidate: ModelRef, config: EvalConfig,
                        run: RunDir, *, target: str, heldout: Path | None = None,
                        store: EvalStore | None = None, judge: ChatModel | None = None,
                        on_done: Callable[[int, int], None] | None = None) -> Evaluation:
    """`run_evaluation`, then its outputs recorded in the run directory (`record_evaluation`). Answers the
    store lacks are taken from earlier runs of the pipeline when they have them (reuse.py)."""
    evaluation = run_evaluation(model, base, candidate, config, target=target, heldout=heldout, store=store,
                                judge=judge, on_done=on_done, earlier=EarlierRuns(run))
    record_evaluation(evaluation, run)
    return evaluation


@task(name="evaluate", **LOCAL_WORK)
def evaluate_models(provider: ChatModel, base: ModelRef, candidate: ModelRef, config: EvalConfig,
                    run: RunDir, *, target: str, heldout: Path | None = None,
                    registry: Registry | None = None, judge: ChatModel | None = None) -> Evaluation:
    """Base and candidate answer every suite's items with the same decoding; outputs go to eval/outputs.jsonl
    and, keyed by (model, item, decoding, sample), to the registry so that a re-run pays only for what is
    missing."""
    names = ", ".join(s.name for s in config.effective_suites)
    milestone("evaluate", "evaluating %s against %s on suites %s", candidate.model_id, base.model_id, names)
    evaluation = evaluate_and_record(
        provider, base, candidate, config, run, target=target, heldout=heldout, judge=judge,
        store=EvalStore(registry.engine) if registry is not None else None,
        on_done=lambda done, total: progress("evaluate", done, total, "%d/%d answers", done, total))
    milestone("evaluate", "evaluated %d answers: %d infra errors, %d provider calls, %d from the cache "
              "(%d of them from earlier run directories)", len(evaluation.results), evaluation.answer_errors,
              evaluation.usage["calls"], evaluation.usage["cache_hits"], evaluation.usage["reused"])
    return evaluation
