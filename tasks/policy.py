"""Retry and cache policy shared by every task that calls a provider.

Only TransientProviderError is retried: a permanent refusal, a config error or a failed job must stop
the run at once. Caching is off because loraflow keys idempotency itself (registry records keyed by
content hashes); Prefect's input hashing cannot hash provider clients anyway.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from providers.errors import TransientProviderError


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    return isinstance(state.result(raise_on_failure=False), TransientProviderError)


PROVIDER_CALL: dict[str, Any] = {
    "retries": 4,
    "retry_delay_seconds": [2, 5, 15, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}
LOCAL_WORK: dict[str, Any] = {"cache_policy": NO_CACHE}
