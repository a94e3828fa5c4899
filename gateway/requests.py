"""What the gateway accepts: bodies read within a size limit, strict JSON, and OpenAI's request shapes.

Every refusal is a 4xx with OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, so the
official SDKs raise BadRequestError (400) or APIStatusError (413) with a message that names the field. The
models check the fields the gateway reads and the common ones it forwards, with OpenAI's types and ranges;
other fields pass through untouched for the upstream to judge.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 8 * 1024 * 1024
OUTCOME_TYPES = ("thumbs_up", "thumbs_down", "regenerate", "edit", "copy", "task_success", "judge_score",
                 "safety_flag")


class Refused(Exception):
    """A request the gateway answers with a 4xx; `param` names the offending field when there is one."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.kind, param=self.param, code=self.code)


def error_response(status: int, message: str, kind: str = "invalid_request_error", *,
                   param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers=headers)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]


class StreamOptions(_Open):
    include_usage: bool = False


Unit = Annotated[float, Field(allow_inf_nan=False)]


class ChatRequest(_Open):
    """`/v1/chat/completions`: what the gateway reads (model, user, stream, response_format) and the
    sampling fields with OpenAI's ranges."""

    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    user: str | None = Field(default=None, max_length=512)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    temperature: Annotated[Unit, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Unit, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[Unit, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[Unit, Field(ge=-2, le=2)] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None


class FeedbackRequest(BaseModel):
    """`/v1/feedback`: an outcome for an earlier request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=128)
    type: Literal[OUTCOME_TYPES]  # type: ignore[valid-type]
    value: Unit = 1.0
    source: str = Field(default="user", min_length=1, max_length=64)
    user: str | None = Field(default=None, max_length=512)


_Model = TypeVar("_Model", bound=BaseModel)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, read up to `limit` bytes (413 past it); NaN and Infinity refused."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body is {int(declared)} bytes; the limit is {limit}", code="body_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"the body passes the limit of {limit} bytes", code="body_too_large")
    try:
        parsed = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Refused(400, f"the body must be a JSON object, not {type(parsed).__name__}")
    return parsed


def parse(model: type[_Model], body: dict[str, Any]) -> _Model:
    """The body as `model`, or Refused(400) naming the first wrong field and what it allows."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if first["type"] == "literal_error":
            message = f"{first['input']!r} is not allowed; allowed values: {first['ctx']['expected']}"
        raise Refused(400, f"{param}: {message}" if param else message, param=param) from None

