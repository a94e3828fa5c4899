"""Calling a chat model for evaluation: the stored answer if there is one (in the registry, else in an
earlier run directory), else a rate-limited call retried on transient errors. A Retry-After from the provider
holds the shared limiter, so every worker backs off, not just the one that was throttled. A call that still
fails raises ProviderError: the caller records it as an infra error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from providers.base import ChatModel, Completion, Decoding, Message, ModelRef
from providers.errors import TransientProviderError
from tasks.evaluation.ratelimit import TokenBucket
from tasks.evaluation.store import EvalStore, output_key

_backoff = wait_exponential_jitter(initial=0.5, max=20)  # `initial`: google-genai caps tenacity below 9.2


@dataclass(frozen=True)
class Request:
    model: ModelRef
    messages: list[Message]
    decoding: Decoding
    sample: int = 0


class AnswerSource(Protocol):
    """Answers kept outside the store (earlier run directories), looked up by the store's key."""

    def answers(self, wanted: Mapping[str, str]) -> dict[str, Completion]:
        """The answers held among `wanted` (answer key -> the model id it asks)."""
        ...


class ModelCaller:
    """One ChatModel (at `target`, e.g. "openai@emulator") behind the output store, a limiter and retries.

    `earlier` answers what the store lacks (a registry lost or emptied since those answers were paid for);
    what it gives is stored. Counters (`calls`, `cache_hits`, `retries`, `failures`) tell what an evaluation
    really paid for; `reused` counts the cache hits that came from `earlier`.
    """

    def __init__(self, model: ChatModel, target: str, *, store: EvalStore | None = None,
                 limiter: TokenBucket | None = None, attempts: int = 5, throttle_budget_s: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep, earlier: AnswerSource | None = None) -> None:
        self.model, self.target, self.store, self.earlier = model, target, store, earlier
        # without a configured limit the bucket still makes every worker honour one worker's Retry-After
        self.limiter = limiter or TokenBucket.unlimited(sleep=sleep)
        self.attempts, self.throttle_budget_s, self._sleep = attempts, throttle_budget_s, sleep
        self._known: dict[str, Completion] = {}
        self._reusable: dict[str, Completion] = {}
        self._lock = threading.Lock()
        self.calls = self.cache_hits = self.retries = self.failures = self.reused = 0

    def key(self, request: Request) -> str:
        """The answer's key in the store: target, model, messages, decoding and sample."""
        return output_key(f"{self.target}:{request.model.model_id}", request.messages, request.decoding,
                          request.sample)

    def prefetch(self, requests: Iterable[Request]) -> int:
        """Load the stored answers of `requests` in bulk, then what `earlier` holds of the rest; returns how
        many were found."""
        wanted = {self.key(r): r.model.model_id for r in requests}
        found = self.store.outputs(wanted) if self.store is not None else {}
        missing = {key: model for key, model in wanted.items() if key not in found}
        reusable = self.earlier.answers(missing) if self.earlier is not None and missing else {}
        with self._lock:
            self._known.update(found)
            self._reusable.update(reusable)
        return len(found) + len(reusable)

    def complete(self, model: ModelRef, messages: list[Message], decoding: Decoding, sample: int = 0
                 ) -> Completion:
        request = Request(model, messages, decoding, sample)
        key = self.key(request)
        known = self._cached(key)
        if known is not None:
            return known
        completion = self._reuse(key)
        if completion is None:
            try:
                completion = self._call(request)
            except Exception:
                with self._lock:
                    self.failures += 1
                raise
        if self.store is not None:  # a new answer, or one paid for before the registry was lost
            self.store.save_output(key, f"{self.target}:{model.model_id}", messages, decoding, sample,
                                   completion)
        return completion

    def _reuse(self, key: str) -> Completion | None:
        with self._lock:
            reused = self._reusable.get(key)
            if reused is not None:
                self.cache_hits += 1
                self.reused += 1
        return reused

    def _cached(self, key: str) -> Completion | None:
        with self._lock:
            known = self._known.get(key)
        if known is None and self.store is not None:
            known = self.store.outputs([key]).get(key)
        if known is not None:
            with self._lock:
                self.cache_hits += 1
        return known

    def _call(self, request: Request) -> Completion:
        retrying = Retrying(retry=retry_if_exception_type(TransientProviderError), wait=self._wait,
                            stop=self._stop, sleep=self._sleep, reraise=True)
        for attempt in retrying:
            with attempt:
                self.limiter.acquire()
                with self._lock:
                    self.calls += 1
                started = time.perf_counter()
                completion = self.model.infer(request.model, request.messages, request.decoding)
        if not completion.latency_ms:
            completion = completion.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})
        return completion

    def _stop(self, retry_state: Any) -> bool:
        # a provider that says when to come back is throttling, not failing: wait it out (within a budget)
        # rather than spend the attempts meant for errors
        if getattr(retry_state.outcome.exception(), "retry_after", None) is not None:
            return retry_state.seconds_since_start >= self.throttle_budget_s
        return retry_state.attempt_number >= self.attempts

    def _wait(self, retry_state: Any) -> float:
        hinted = getattr(retry_state.outcome.exception(), "retry_after", None)
        with self._lock:
            self.retries += 1
        if hinted is None:
            return _backoff(retry_state)
        self.limiter.defer(hinted)  # every worker waits; this one books its next slot after the pause
        return 0.0
