"""Teacher-generated training data: a stronger model answers a file of real inputs, and each answer becomes a
chat example (the distillation recipe's data source).

Inputs are JSONL, one per line: `{"messages": [...]}` (a trailing assistant turn is dropped and answered
afresh) or `{"prompt": "..."}`; an optional `metadata` object is carried over. Every finished answer is
appended to a cache beside the output (`<out>.cache.jsonl`, flushed and fsynced per line) under a key of
(input, teacher, decoding), so a resumed or repeated run pays only for the items still missing. Calls go
through the evaluation's ModelCaller: a shared rate limit, retries that honour Retry-After. The cost is
estimated from tokens and the catalog's prices before any call and recorded from the answers' usage after.
The output is ordinary chat JSONL: `loraflow data check` and the pipeline's data step validate, scrub and
deduplicate it like any other data.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from providers.base import ChatModel, Completion, Decoding, Message, ModelRef
from providers.catalog import model_facts
from providers.errors import ConfigError, ProviderError
from tasks.data.tokens import token_counter
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.ratelimit import TokenBucket
from tasks.rundir import atomic_write, write_json


@dataclass(frozen=True)
class Teacher:
    """Which model writes the answers, where (`target` names provider and endpoint), and how it decodes."""

    provider: str
    model: str
    target: str
    decoding: Decoding = field(default_factory=Decoding)
    system: str | None = None

    @property
    def ref(self) -> ModelRef:
        return ModelRef(provider=self.provider, model_id=self.model, base_model=self.model)


@dataclass(frozen=True)
class Input:
    line: int
    messages: list[Message]
    metadata: dict[str, Any] | None
    key: str


@dataclass(frozen=True)
class CostEstimate:
    input_tokens: int
    max_output_tokens: int
    usd: float | None
    basis: str


@dataclass
class GenerationResult:
    items: int
    generated: int
    cached: int
    failed: list[str]
    calls: int
    prompt_tokens: int
    completion_tokens: int
    estimate: CostEstimate
    actual_usd: float | None
    output: str


def _messages(row: dict[str, Any], where: str, system: str | None) -> list[Message]:
    if isinstance(row.get("prompt"), str):
        messages = [{"role": "user", "content": row["prompt"]}]
    elif isinstance(row.get("messages"), list) and row["messages"]:
        messages = list(row["messages"])
        while messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            messages.pop()
    else:
        raise ConfigError(f"{where}: expected a 'prompt' string or a non-empty 'messages' list")
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ConfigError(f"{where}: 'messages' must hold message objects with a role, "
                          "ending before the answer")
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def item_key(messages: list[Message], teacher: Teacher) -> str:
    identity = {"messages": messages, "teacher": f"{teacher.target}:{teacher.model}",
                "decoding": teacher.decoding.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def read_inputs(path: Path, teacher: Teacher) -> list[Input]:
    """Every input of `path`; ConfigError naming file:line for a line that is not an input."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{where}: not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected a JSON object")
            messages = _messages(row, where, teacher.system)
            metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else None
            items.append(Input(number, messages, metadata, item_key(messages, teacher)))
    if not items:
        raise ConfigError(f"{path}: no inputs")
    return items


def estimate_cost(items: list[Input], teacher: Teacher) -> CostEstimate:
    """Input tokens counted with the teacher's tokenizer; output bounded by decoding.max_tokens per item."""
    counter = token_counter(teacher.provider, teacher.model, "o200k_base")
    input_tokens = sum(counter.example_tokens({"messages": i.messages}) for i in items)
    output_tokens = teacher.decoding.max_tokens * len(items)
    usd, basis = price(teacher, input_tokens, output_tokens)
    return CostEstimate(input_tokens, output_tokens, usd, basis + " (output at most max_tokens per item)")


def price(teacher: Teacher, input_tokens: int, output_tokens: int) -> tuple[float | None, str]:
    facts = model_facts(teacher.provider, teacher.model)
    rates = facts.inference_usd_per_1m_tokens if facts else {}
    if "input" not in rates or "output" not in rates:
        return None, f"no inference price for {teacher.provider} model {teacher.model!r} in the catalog"
    usd = (input_tokens * rates["input"] + output_tokens * rates["output"]) / 1e6
    return usd, f"catalog as of {facts.as_of}"


class AnswerCache:
    """Finished answers by item key, in an append-only JSONL file; each line is fsynced before it counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.answers: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash: that item is simply answered again
                self.answers[entry["key"]] = entry["completion"]

    def add(self, key: str, completion: Completion) -> None:
        entry = {"key": key, "completion": completion.model_dump(mode="json")}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.answers[key] = entry["completion"]


def _example(item: Input, answer: dict[str, Any], teacher: Teacher) -> str:
    example: dict[str, Any] = {"messages": [*item.messages, {"role": "assistant", "content": answer["text"]}]}
    example["metadata"] = {**(item.metadata or {}), "teacher": f"{teacher.target}:{teacher.model}"}
    return json.dumps(example, ensure_ascii=False)


def generate(inputs: Path, output: Path, teacher: Teacher, model: ChatModel, *, concurrency: int = 4,
             requests_per_minute: float | None = None, max_usd: float | None = None,
             on_done: Callable[[int, int], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> GenerationResult:
    """Answer every input not yet in the cache with the teacher and write `output` as chat JSONL (every
    cached answer, in input order); writes `<output>.generation.json` with the estimate and what was paid.
    ConfigError before any call when the estimate for the missing items passes `max_usd`."""
    items = read_inputs(inputs, teacher)
    cache = AnswerCache(output.with_name(output.name + ".cache.jsonl"))
    missing = [i for i in items if i.key not in cache.answers]
    estimate = estimate_cost(missing, teacher)
    if max_usd is not None and (estimate.usd is None or estimate.usd > max_usd):
        shown = "unknown" if estimate.usd is None else f"${estimate.usd:,.2f}"
        raise ConfigError(f"generation would cost {shown} for {len(missing)} items ({estimate.basis}); the "
                          f"limit is ${max_usd:,.2f}")
    limiter = TokenBucket.per_minute(requests_per_minute, sleep=sleep) if requests_per_minute else None
    caller = ModelCaller(model, teacher.target, limiter=limiter, sleep=sleep)
    failed: list[str] = []
    usage = {"prompt": 0, "completion": 0, "done": 0}
    lock = threading.Lock()

    def answer(item: Input) -> None:
        try:
            completion = caller.complete(teacher.ref, item.messages, teacher.decoding)
        except ProviderError as exc:
            with lock:
                failed.append(f"{inputs}:{item.line}: {exc}")
            return
        usable = completion.finish_reason != "length" and completion.text.strip()
        if usable:
            cache.add(item.key, completion)
        with lock:
            usage["prompt"] += completion.prompt_tokens
            usage["completion"] += completion.completion_tokens
            if not usable:
                why = "cut at max_tokens" if completion.text.strip() else "empty"
                failed.append(f"{inputs}:{item.line}: teacher answer {why}; not kept")
                return
            usage["done"] += 1
            if on_done is not None:
                on_done(len(items) - len(missing) + usage["done"], len(items))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(answer, missing))
    lines = [_example(i, cache.answers[i.key], teacher) for i in items if i.key in cache.answers]
    atomic_write(output, "".join(line + "\n" for line in lines))
    actual, _ = price(teacher, usage["prompt"], usage["completion"])
    result = GenerationResult(items=len(items), generated=usage["done"], cached=len(items) - len(missing),
                              failed=sorted(failed), calls=caller.calls, prompt_tokens=usage["prompt"],
                              completion_tokens=usage["completion"], estimate=estimate, actual_usd=actual,
                              output=str(output))
    write_json(output.with_name(output.name + ".generation.json"),
               {**asdict(result), "inputs": str(inputs),
                "teacher": {"provider": teacher.provider, "model": teacher.model, "target": teacher.target,
                            "decoding": teacher.decoding.model_dump(mode="json")}})
    return result
