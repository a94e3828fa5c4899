"""Calling a chat model for evaluation: the stored answer if there is one, else a rate-limited call retried on
transient errors. A Retry-After from the provider holds the shared limiter, so every worker backs off, not
just the one that was throttled. A call that still fails raises ProviderError: the caller records it as an
infra error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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


class ModelCaller:
    """One ChatModel (at `target`, e.g. "openai@emulator") behind the output store, a limiter and retries.

    Counters (`calls`, `cache_hits`, `retries`, `failures`) tell what an evaluation really paid for.
    """

    def __init__(self, model: ChatModel, target: str, *, store: EvalStore | None = None,
                 limiter: TokenBucket | None = None, attempts: int = 5, throttle_budget_s: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model, self.target, self.store = model, target, store
        # without a configured limit the bucket still makes every worker honour one worker's Retry-After
        self.limiter = limiter or TokenBucket.unlimited(sleep=sleep)
        self.attempts, self.throttle_budget_s, self._sleep = attempts, throttle_budget_s, sleep
        self._known: dict[str, Completion] = {}
        self._lock = threading.Lock()
        self.calls = self.cache_hits = self.retries = self.failures = 0

    def _key(self, request: Request) -> str:
        return output_key(f"{self.target}:{request.model.model_id}", request.messages, request.decoding,
                          request.sample)

    def prefetch(self, requests: Iterable[Request]) -> int:
        """Load the stored answers of `requests` in bulk; returns how many were found."""
        if self.store is None:
            return 0
        found = self.store.outputs({self._key(r) for r in requests})
        with self._lock:
            self._known.update(found)
        return len(found)

    def complete(self, model: ModelRef, messages: list[Message], decoding: Decoding, sample: int = 0
                 ) -> Completion:
        request = Request(model, messages, decoding, sample)
        key = self._key(request)
        known = self._cached(key)
        if known is not None:
            return known
        try:
            completion = self._call(request)
        except Exception:
            with self._lock:
                self.failures += 1
            raise
        if self.store is not None:
            self.store.save_output(key, f"{self.target}:{model.model_id}", messages, decoding, sample,
                                   completion)
        return completion

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
