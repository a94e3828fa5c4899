"""What every vendor's routes share on the wire: the refusal (`ApiError`), the JSON body reader, and the
OpenAI-compatible chat.completion object that the OpenAI and Together routes both answer with.

`ApiError` is the one way a route refuses a request: the app renders it as
`{"error": {"message", "type", "param", "code"}}` with its status and headers; a vendor with another
envelope (Vertex's `GoogleError`) subclasses it and overrides `body()`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request


class ApiError(Exception):
    """A refused request, rendered in OpenAI's error envelope with this HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers, self.extra = headers or {}, extra or {}

    def body(self) -> dict[str, Any]:
        """The error envelope; `extra` adds top-level keys some answers carry (Together's 409 file_id)."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return {"error": error, **self.extra}

    @classmethod
    def from_validation(cls, exc: ValidationError) -> ApiError:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            return cls(400, f"Unrecognized request argument supplied: {param}", param=param)
        if first["type"] == "missing":
            return cls(400, f"Missing required parameter: '{param}'.", param=param,
                       code="missing_required_parameter")
        return cls(400, f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value")


def not_found(kind: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"No such {kind}: {ident}", param=param)


def model_not_found(model: str) -> ApiError:
    """The answer to a chat completion for a tuned-looking model id that no job of the emulator produced."""
    return ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                    param="model", code="model_not_found")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; ApiError 400 for anything else, as the service answers."""
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "We could not parse the JSON body of your request.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def chat_completion(ident: str, model: str, text: str, *, finish_reason: str, created: float,
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": ident, "object": "chat.completion", "created": int(created), "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
