"""The paired evaluation: base and candidate answer the same items with the same decoding.

An item is an eval example without its final assistant turn; that turn is the reference. Calls run
concurrently; a transient provider error is retried with backoff (honouring the provider's Retry-After);
a call that still fails is an infra error: recorded, excluded from scoring, and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from providers.base import Completion, Decoding, Message, ModelRef, Provider
from providers.errors import ProviderError, TransientProviderError
from tasks.data.split import canonical
from tasks.evaluation.graders import Grader, GraderResult

ROLES = ("base", "candidate")


@dataclass(frozen=True)
class EvalItem:
    key: str
    messages: list[Message]
    reference: str | None


@dataclass
class ItemResult:
    item: str
    role: str
    model_id: str
    output: str | None
    latency_ms: float = 0.0
    error: str | None = None
    grades: dict[str, GraderResult] = field(default_factory=dict)


def load_items(path: Path, limit: int | None = None) -> list[EvalItem]:
    """Eval items from a prepared (already validated) chat JSONL file, in file order."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(items) >= limit:
                break
            example = json.loads(line)
            key = hashlib.sha256(canonical(example).encode()).hexdigest()[:16]
            *prompt, final = example["messages"]
            items.append(EvalItem(key=key, messages=prompt, reference=final.get("content")))
    return items


def _wait_for(retry_state: Any) -> float:
    error = retry_state.outcome.exception()
    hinted = getattr(error, "retry_after", None)
    return hinted if hinted is not None else wait_exponential_jitter(initial=0.5, max=20)(retry_state)


_with_retries = retry(retry=retry_if_exception_type(TransientProviderError), wait=_wait_for,
                      stop=stop_after_attempt(5), reraise=True)


def answer(provider: Provider, model: ModelRef, item: EvalItem, decoding: Decoding, role: str) -> ItemResult:
    try:
        completion: Completion = _with_retries(provider.infer)(model, item.messages, decoding)
    except ProviderError as exc:
        return ItemResult(item=item.key, role=role, model_id=model.model_id, output=None, error=str(exc))
    return ItemResult(item=item.key, role=role, model_id=model.model_id, output=completion.text,
                      latency_ms=completion.latency_ms)


def run_pair(provider: Provider, models: dict[str, ModelRef], items: list[EvalItem], decoding: Decoding,
             graders: dict[str, Grader], *, concurrency: int, on_done: Callable[[int, int], None] | None = None
             ) -> list[ItemResult]:
    """Answer every item with each model (roles in ROLES order) and grade every answer.

    `graders` maps the grader id used in results to the grader.
    """
    jobs = [(role, item) for role in ROLES for item in items]
    references = {item.key: item.reference for item in items}
    results: list[ItemResult] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(answer, provider, models[role], item, decoding, role) for role, item in jobs]
        for done, future in enumerate(futures, start=1):
            result = future.result()
            if result.output is not None:
                result.grades = {gid: g.grade(result.output, references[result.item]) for gid, g in graders.items()}
            results.append(result)
            if on_done is not None:
                on_done(done, len(jobs))
    return results


def to_json_line(result: ItemResult) -> str:
    return json.dumps(asdict(result), ensure_ascii=False, sort_keys=True)
