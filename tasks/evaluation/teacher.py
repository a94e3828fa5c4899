"""The distillation recipe's second comparison: the candidate against the teacher it learned from.

The decision stays base-versus-candidate (the rule table's question: is it better than what runs today?);
this answers the recipe's own question, "comparable quality to the larger model?", on the target suites, as
notes beside the decision and a section of the run directory. The candidate's answers come from the output
store, so only the teacher's answers are new calls.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from providers.base import ChatModel, ModelRef
from tasks.evaluation.compare import Comparison, compare_all
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.evaluation.evaluate import run_evaluation
from tasks.evaluation.gate import thresholds_for
from tasks.evaluation.store import EvalStore
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.registry import Registry
from tasks.rundir import RunDir, write_json


def teacher_notes(comparisons: list[Comparison], teacher: str) -> list[str]:
    return [f"against the teacher {teacher}: {c.metric} candidate {c.candidate_value:.1%} vs teacher "
            f"{c.base_value:.1%} ({c.delta * 100:+.1f} pp [{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}], "
            f"n={c.n})" for c in comparisons if c.slice is None]


def compare_against_teacher(model: ChatModel, candidate: ModelRef, config: EvalConfig, gate: GateConfig,
                            run: RunDir, *, target: str, heldout: Path | None = None,
                            store: EvalStore | None = None) -> list[str]:
    """Teacher and candidate on the target suites; eval/teacher.json, the manifest's `teacher` section, and
    one note per metric. Nothing (an empty list) when no teacher is configured."""
    if config.teacher is None:
        return []
    teacher = ModelRef(provider=candidate.provider, model_id=config.teacher, base_model=config.teacher)
    suites = [s for s in config.effective_suites if s.role == "target"]
    evaluation = run_evaluation(model, teacher, candidate, config.model_copy(update={
        "suites": suites, "graders": [], "primary": None}), target=target, heldout=heldout, store=store)
    comparisons = compare_all(evaluation, thresholds_for(gate)[1])
    write_json(run.eval_dir / "teacher.json", {"teacher": config.teacher, "usage": evaluation.usage,
                                               "comparisons": [c.model_dump(mode="json")
                                                               for c in comparisons]})
    run.record("teacher", {"model": config.teacher, "file": "eval/teacher.json", "usage": evaluation.usage})
    return teacher_notes(comparisons, config.teacher)


@task(name="compare-with-teacher", **LOCAL_WORK)
def compare_with_teacher(model: ChatModel, candidate: ModelRef, config: EvalConfig, gate: GateConfig,
                         run: RunDir, *, target: str, heldout: Path | None = None,
                         registry: Registry | None = None) -> list[str]:
    notes = compare_against_teacher(model, candidate, config, gate, run, target=target, heldout=heldout,
                                    store=EvalStore(registry.engine) if registry is not None else None)
    for note in notes:
        milestone("evaluate", "%s", note)
    return notes
