"""Chat completions, the same for every API the emulator speaks (Together's is OpenAI-compatible).

A request is admitted by the serving knobs (serving.py), answered by the model's imitation (a tuned model
from its training data, a base model generically), cut at `max_completion_tokens`/`max_tokens`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from emulator.openai.shapes import ApiError, chat_completion
from emulator.state import EmulatorState
from providers.imitation import count_tokens

_TOKEN = re.compile(r"\S+")


async def complete(state: EmulatorState, body: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion object for a request body; ApiError for a refused request."""
    await state.admit_completion()
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty list of message objects.", param="messages")
    if body.get("stream"):
        raise ApiError(400, "The emulator does not stream; call without stream=True.", param="stream")
    text = state.imitation(model).reply(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, finish_reason = _truncate(text, limit if isinstance(limit, int) and limit > 0 else None)
    state.count_completion()
    prompt_tokens = sum(count_tokens(_text(m.get("content"))) for m in messages)
    return chat_completion(
        f"chatcmpl-{uuid.uuid4().hex[:24]}", model, text, finish_reason=finish_reason, created=state.now(),
        prompt_tokens=prompt_tokens, completion_tokens=count_tokens(text))


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
