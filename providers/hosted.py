"""What the adapters of hosted APIs with Stainless-generated SDKs (openai, together) have in common.

Both SDKs raise the same exception classes with the same meaning (APIStatusError with the HTTP status,
APIConnectionError for the network, APIResponseValidationError for a strict-mode shape error), read
options and keys the same way, stream file contents and answer chat completions in the same shape; each
adapter passes its own name, SDK module and client. Vendor words stay in the adapters.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from providers.base import Completion
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

Options = TypeVar("Options", bound=BaseModel)

_RETRIED_STATUSES = (408, 409, 429)


@contextmanager
def translated(provider: str, sdk: ModuleType, *, refusals: tuple[type[Exception], ...] = (),
               transport: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Raise the error-tree class for whatever the SDK raises inside. `refusals` are the SDK's own checks
    before sending (permanent); `transport` are the HTTP library's network errors, which reach the caller
    unwrapped where the SDK reads a stream or uses its HTTP client directly (transient)."""
    try:
        yield
    except sdk.APIStatusError as exc:
        status = exc.status_code
        message = f"HTTP {status}: {error_message(exc)}"
        if status in _RETRIED_STATUSES or status >= 500:
            raise TransientProviderError(provider, message, status_code=status,
                                         retry_after=retry_after(exc.response.headers)) from exc
        raise PermanentProviderError(provider, message, status_code=status) from exc
    except (sdk.APIConnectionError, *transport) as exc:
        raise TransientProviderError(provider, f"connection failed: {exc}") from exc
    except refusals as exc:
        raise PermanentProviderError(provider, f"refused before sending: {exc}") from exc
    except json.JSONDecodeError as exc:
        # a body that is not JSON at all was cut or garbled on the way (a proxy page, a torn response);
        # asking again is safe, unlike a well-formed answer we do not understand
        raise TransientProviderError(provider, f"response body was not JSON: {exc}") from exc
    except (sdk.APIResponseValidationError, ValueError, KeyError, IndexError, TypeError,
            AttributeError) as exc:
        raise UnexpectedProviderResponse(provider, f"response not understood: {exc}") from exc


def error_message(exc: Exception) -> str:
    """The service's own message: OpenAI's envelope body, or a body with `error.message` or `message`."""
    body = getattr(exc, "body", None)
    body = body if isinstance(body, dict) else {}
    nested = body.get("error")
    return str((nested if isinstance(nested, dict) else body).get("message") or getattr(exc, "message", exc))


def retry_after(headers) -> float | None:
    """The server's hint in seconds: `retry-after-ms` first, then `retry-after` (an HTTP date is ignored)."""
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def options_and_key(model: type[Options], options: dict, *, provider: str, api_key: str | None,
                    key_env: str = "api_key_env") -> tuple[Options, str]:
    """The validated options and the API key (given, else from the variable the options name)."""
    try:
        parsed = model.model_validate(options)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=f"{provider} provider",
                                          prefix="provider.options") from exc
    variable = getattr(parsed, key_env)
    key = api_key or os.environ.get(variable)
    if not key:
        raise ConfigError(f"{provider} provider: set the environment variable {variable} "
                          f"(provider.options.{key_env} names it), or use provider.endpoint: emulator")
    return parsed, key


def is_preference_data(client: Any, file_id: str) -> bool:
    """Whether an uploaded file holds DPO pairs (`input` + `preferred_output`), judged by its first line,
    which is all that is read of it. Call it inside the adapter's translation."""
    with client.files.with_streaming_response.content(file_id) as response:
        first = next(response.iter_lines(), "")
    example = json.loads(first) if first.strip() else {}
    return isinstance(example, dict) and "input" in example and "preferred_output" in example


def completion(response: Any, started: float) -> Completion:
    """A chat.completion response as loraflow's Completion; `started` is the perf_counter before the call."""
    choice, usage = response.choices[0], response.usage
    return Completion(
        text=choice.message.content or "", model_id=response.model, finish_reason=choice.finish_reason or "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        latency_ms=(time.perf_counter() - started) * 1000)
