"""Chat completions, the same for every API that speaks OpenAI's (the OpenAI and Together routes).

A request is admitted by the serving knobs (serving.py), answered by the model's imitation, cut at
`max_completion_tokens`/`max_tokens`. Which imitation answers is the route's call: each vendor passes
the lookup of its own tuned models, so this module knows no vendor.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from emulator import training_file
from emulator.state import EmulatorState, Imitation
from emulator.wire import ApiError, chat_completion
from providers.imitation import BaseImitation, TunedImitation, count_tokens

_TOKEN = re.compile(r"\S+")


async def complete(state: EmulatorState, body: dict[str, Any],
                   imitation: Callable[[str], Imitation]) -> dict[str, Any]:
    """The chat.completion object for a request body, answered by `imitation(model)` (which may refuse
    the model with an ApiError); ApiError for a refused request."""
    await state.admit_completion()
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model",
                       code="missing_required_parameter")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty list of message objects.", param="messages")
    text = imitation(model).reply(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, finish_reason = _truncate(text, limit if isinstance(limit, int) and limit > 0 else None)
    state.count_completion()
    prompt_tokens = sum(count_tokens(_text(m.get("content"))) for m in messages)
    return chat_completion(
        f"chatcmpl-{uuid.uuid4().hex[:24]}", model, text, finish_reason=finish_reason, created=state.now(),
        prompt_tokens=prompt_tokens, completion_tokens=count_tokens(text))


async def respond(state: EmulatorState, body: dict[str, Any],
                  imitation: Callable[[str], Imitation]) -> Response:
    """The answer as JSON, or as OpenAI streams it: server-sent `chat.completion.chunk` events (the role,
    the text a word at a time, the finish reason), a usage chunk with no choices when
    `stream_options.include_usage` is set, then `data: [DONE]`."""
    completion = await complete(state, body, imitation)
    if not body.get("stream"):
        return JSONResponse(completion)
    options = body.get("stream_options")
    usage = isinstance(options, dict) and options.get("include_usage") is True
    return StreamingResponse(_events(completion, usage), media_type="text/event-stream")


def _events(completion: dict[str, Any], usage: bool) -> Iterator[str]:
    choice = completion["choices"][0]
    head = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint")}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        event = {**head, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(event)}\n\n"

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in re.findall(r"\s*\S+", choice["message"]["content"]):
        yield chunk({"content": piece})
    yield chunk({}, choice["finish_reason"])
    if usage:
        tail = {**head, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]}
        yield f"data: {json.dumps(tail)}\n\n"
    yield "data: [DONE]\n\n"


def tuned_on(content: bytes) -> Imitation:
    """The imitation of a model tuned on `content` (chat JSONL, SFT or DPO shaped); a base model when no
    example ends in an assistant turn, as there is nothing to imitate."""
    try:
        return TunedImitation.from_jsonl(training_file.chat_lines(content))
    except ValueError:
        return BaseImitation()


def _truncate(text: str, limit: int | None) -> tuple[str, str]:
    """Cut after `limit` whitespace tokens, keeping the original spacing of what is kept."""
    tokens = list(_TOKEN.finditer(text))
    if limit is None or len(tokens) <= limit:
        return text, "stop"
    return text[:tokens[limit - 1].end()], "length"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")
