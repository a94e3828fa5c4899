"""Chat completions, the same for every API that speaks OpenAI's (the OpenAI and Together routes).

A request is admitted by the serving knobs (serving.py), answered by the model's imitation, cut at
`max_completion_tokens`/`max_tokens`. Which imitation answers is the route's call: each vendor passes
the lookup of its own tuned models, so this module knows no vendor.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

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
    if body.get("stream"):
        raise ApiError(400, "The emulator does not stream; call without stream=True.", param="stream")
    text = imitation(model).reply(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, finish_reason = _truncate(text, limit if isinstance(limit, int) and limit > 0 else None)
    state.count_completion()
    prompt_tokens = sum(count_tokens(_text(m.get("content"))) for m in messages)
    return chat_completion(
        f"chatcmpl-{uuid.uuid4().hex[:24]}", model, text, finish_reason=finish_reason, created=state.now(),
        prompt_tokens=prompt_tokens, completion_tokens=count_tokens(text))


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
