"""The paired evaluation: base and candidate answer the same items with the same decoding.

Every (suite, item, model, sample) answer goes through one ModelCaller (stored answers first, a shared rate
limit, retries honouring Retry-After) on a thread pool, and is graded as soon as it arrives. Pairwise graders
run once both answers to an item are in. A call that still fails after its retries is an infra error:
recorded, never graded, and counted apart from model errors (empty or truncated answers, which score 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from providers.base import ChatModel, Completion, Decoding, ModelRef
from providers.errors import PermanentProviderError, ProviderError
from tasks.evaluation.calls import ModelCaller, Request
from tasks.evaluation.graders import GraderResult, model_error
from tasks.evaluation.items import EvalItem
from tasks.evaluation.suites import Suite

ROLES = ("base", "candidate")


@dataclass
class ItemResult:
    """One model's answer to one item (one sample) and its grades; `error` is an infra error."""

    item: str
    role: str
    model_id: str
    output: str | None
    latency_ms: float = 0.0
    error: str | None = None
    grades: dict[str, GraderResult] = field(default_factory=dict)
    suite: str = ""
    sample: int = 0
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_error: str | None = None
    key: str = ""  # the answer's key in the output store: a later run reuses it from the run directory


def grade_answer(suite: Suite, item: EvalItem, completion: Completion) -> dict[str, GraderResult]:
    """Every pointwise grader of the suite on one answer; a model error scores 0 on the quality graders."""
    why = model_error(completion)
    grades = {}
    for gid, grader in suite.graders.items():
        if why is not None and not grader.operational:
            grades[gid] = GraderResult(grader.name, grader.version, 0.0, False, {"model_error": why})
        else:
            grades[gid] = grader.grade(item, completion)
    return grades


def sample_decoding(decoding: Decoding, sample: int) -> Decoding:
    """Sample k of an item decodes with seed + k (the same for both models), so samples differ when the
    provider honours seeds and temperature > 0."""
    if sample == 0 or decoding.seed is None:
        return decoding
    return decoding.model_copy(update={"seed": decoding.seed + sample})


def refused_credentials(exc: ProviderError) -> bool:
    """An authentication or permission refusal (HTTP 401/403): permanent for every item, not just one."""
    return isinstance(exc, PermanentProviderError) and exc.status_code in (401, 403)


def answer(provider: ChatModel, model: ModelRef, item: EvalItem, decoding: Decoding, role: str, *,
           caller: ModelCaller | None = None, suite: Suite | None = None, sample: int = 0) -> ItemResult:
    """One model's answer to one item, graded by the suite's graders; an infra error becomes the result's
    `error`. Without a caller, transient errors are retried (Retry-After honoured) with nothing stored."""
    caller = caller or ModelCaller(provider, provider.name)
    request = Request(model, item.messages, sample_decoding(decoding, sample), sample)
    key = caller.key(request)
    try:
        completion = caller.complete(model, request.messages, request.decoding, sample)
    except ProviderError as exc:
        if refused_credentials(exc):
            raise  # every other call would be refused the same way: the evaluation stops here
        return ItemResult(item=item.key, role=role, model_id=model.model_id, output=None, error=str(exc),
                          suite=suite.name if suite else "", sample=sample, key=key)
    return ItemResult(item=item.key, role=role, model_id=model.model_id, output=completion.text,
                      latency_ms=completion.latency_ms, suite=suite.name if suite else "", sample=sample,
                      finish_reason=completion.finish_reason, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens, model_error=model_error(completion),
                      grades=grade_answer(suite, item, completion) if suite else {}, key=key)


def _completion(result: ItemResult) -> Completion:
    return Completion(text=result.output or "", model_id=result.model_id, finish_reason=result.finish_reason)


def _pair_grades(suite: Suite, item: EvalItem, candidate: ItemResult,
                 base: ItemResult) -> dict[str, GraderResult]:
    grades = {}
    for gid, grader in suite.pair_graders.items():
        if candidate.model_error or base.model_error:
            # a model error loses against a real answer: no judge needed to say so
            score = (0.5 if candidate.model_error and base.model_error
                     else (0.0 if candidate.model_error else 1.0))
            label = {0.0: "loss", 0.5: "tie", 1.0: "win"}[score]
            grades[gid] = GraderResult(grader.name, grader.version, score, score == 1.0,
                                       {"model_error": True}, label=label)
            continue
        grades[gid] = grader.grade_pair(item, _completion(candidate), _completion(base))
    return grades


class _UntilRefused:
    """`answer` for the pool's jobs until one raises (refused credentials): the jobs after it make no call."""

    def __init__(self) -> None:
        self.refused: ProviderError | None = None

    def answer(self, *args: Any, **kwargs: Any) -> ItemResult:
        if self.refused is not None:
            raise self.refused
        try:
            return answer(*args, **kwargs)
        except ProviderError as exc:
            self.refused = exc
            raise


def run_suites(caller: ModelCaller, models: dict[str, ModelRef], suites: list[Suite], decoding: Decoding, *,
               samples: int = 1, concurrency: int = 4, on_done: Callable[[int, int], None] | None = None
               ) -> list[ItemResult]:
    """Answer and grade every item of every suite with both models (`models` maps ROLES to refs)."""
    jobs = [(suite, item, role, sample) for suite in suites for item in suite.items for role in ROLES
            for sample in range(samples)]
    caller.prefetch(Request(models[role], item.messages, sample_decoding(decoding, sample), sample)
                    for _, item, role, sample in jobs)
    pairs = sum(len(s.items) * samples for s in suites if s.pair_graders)
    total, done = len(jobs) + pairs, 0

    def finished() -> None:
        nonlocal done
        done += 1
        if on_done is not None:
            on_done(done, total)

    results: list[ItemResult] = []
    guarded = _UntilRefused()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(guarded.answer, caller.model, models[role], item, decoding, role,
                               caller=caller, suite=suite, sample=sample)
                   for suite, item, role, sample in jobs]
        try:
            for future in futures:
                results.append(future.result())
                finished()
        except ProviderError:
            pool.shutdown(wait=False, cancel_futures=True)  # the calls not started yet are never made
            raise
        pair_futures: list[tuple[ItemResult, Future[dict[str, GraderResult]]]] = []
        by_key = {(r.suite, r.item, r.role, r.sample): r for r in results}
        for suite in (s for s in suites if s.pair_graders):
            for item in suite.items:
                for sample in range(samples):
                    cand, base = (by_key[(suite.name, item.key, role, sample)]
                                  for role in ("candidate", "base"))
                    if cand.error or base.error:
                        finished()
                        continue
                    pair_futures.append((cand, pool.submit(_pair_grades, suite, item, cand, base)))
        for cand, future in pair_futures:
            cand.grades.update(future.result())
            finished()
    return results


def to_json_line(result: ItemResult) -> str:
    return json.dumps(asdict(result), ensure_ascii=False, sort_keys=True)
