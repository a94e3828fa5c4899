"""The evaluation task: run the paired evaluation and keep every output in the run directory."""

from __future__ import annotations

from prefect import task

from providers.base import Decoding, ModelRef, Provider
from tasks.evaluation.graders import Grader
from tasks.evaluation.runner import ROLES, EvalItem, ItemResult, run_pair, to_json_line
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone, progress
from tasks.rundir import RunDir, atomic_write, sha256_file


@task(name="evaluate", **LOCAL_WORK)
def evaluate_models(provider: Provider, base: ModelRef, candidate: ModelRef, items: list[EvalItem],
                    graders: dict[str, Grader], decoding: Decoding, run: RunDir, *, concurrency: int
                    ) -> list[ItemResult]:
    """Base and candidate answer `items` with the same `decoding`; outputs go to eval/outputs.jsonl."""
    milestone("evaluate", "evaluating %s against %s on %d items", candidate.model_id, base.model_id, len(items))
    results = run_pair(provider, dict(zip(ROLES, (base, candidate))), items, decoding, graders,
                       concurrency=concurrency,
                       on_done=lambda done, total: progress("evaluate", done, total, "%d/%d answers", done, total))
    outputs = run.eval_dir / "outputs.jsonl"
    atomic_write(outputs, "".join(to_json_line(r) + "\n" for r in results))
    errors = sum(r.error is not None for r in results)
    run.record("evaluation", {
        "items": len(items), "decoding": decoding.model_dump(mode="json"),
        "models": {"base": base.model_dump(mode="json"), "candidate": candidate.model_dump(mode="json")},
        "graders": {gid: {"name": g.name, "version": g.version} for gid, g in graders.items()},
        "infra_errors": errors, "outputs": str(outputs.relative_to(run.root)),
        "outputs_sha256": sha256_file(outputs),
    })
    milestone("evaluate", "evaluated %d answers (%d infra errors)", len(results), errors)
    return results
