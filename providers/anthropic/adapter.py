"""Anthropic's Messages API as a chat model (judges, teachers) through the `anthropic` SDK (>= 2.14, httpx2).

Chat only: `infer` and nothing else; it is not a training provider. API: messages.create(model, max_tokens,
system, messages, stop_sequences). Auth: a key from the environment variable named by `api_key_env`
(ANTHROPIC_API_KEY by default).
Quirks: since API version 2026-10-21 (the SDK 2.x default) the API refuses temperature, top_p and top_k at
any value and the SDK no longer offers them, and there is no seed: a Decoding's temperature, top_p and seed
are therefore not sent (`supports_sampling_params = False`); pin the model snapshot and use judge votes for
repeatability. System turns go to `system`; consecutive turns of one role are merged, as the API wants
user/assistant alternation.
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

import anthropic
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.base import Completion, Decoding, Message, ModelRef
from providers.errors import ConfigError, UnexpectedProviderResponse
from providers.hosted import translated

NAME = "anthropic"

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
    "pause_turn": "pause",
}


class AnthropicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str = Field(default="ANTHROPIC_API_KEY",
                             description="environment variable holding the API key")
    max_retries: int = Field(default=2, ge=0, le=10, description="SDK-level retries per request")
    timeout_s: float = Field(default=600, gt=0)


def _translated():
    """Map the SDK's exceptions onto loraflow's error tree: a Stainless SDK like openai's, so the shared
    translation applies (Anthropic's 529 "overloaded" is a 5xx, so transient)."""
    return translated(NAME, anthropic)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    raise ConfigError(f"anthropic chat model: message content must be text, got {type(content).__name__}")


def to_request(messages: list[Message]) -> tuple[str | None, list[dict[str, str]]]:
    """(system, alternating user/assistant turns) from OpenAI-shape messages."""
    system, turns = [], []
    for message in messages:
        role, text = message.get("role"), _text(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            if turns and turns[-1]["role"] == role:
                turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{text}"}
            else:
                turns.append({"role": role, "content": text})
        else:
            raise ConfigError(f"anthropic chat model: role {role!r} is not supported; allowed values: "
                              "system, developer, user, assistant")
    return ("\n\n".join(system) or None), turns


class AnthropicChat:
    """A ChatModel over the Messages API; the client is injected (tests pass an httpx2 MockTransport)."""

    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = AnthropicOptions
    supports_sampling_params: ClassVar[bool] = False

    def __init__(self, client: anthropic.Anthropic, options: AnthropicOptions | None = None) -> None:
        self.client = client
        self.options = options or AnthropicOptions()

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> AnthropicChat:
        try:
            opts = AnthropicOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="anthropic chat model", prefix="options") from exc
        key = api_key or os.environ.get(opts.api_key_env)
        if not key:
            raise ConfigError(f"anthropic chat model: set the environment variable {opts.api_key_env} "
                              "(options.api_key_env names it)")
        client = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=opts.max_retries,
                                     timeout=opts.timeout_s)
        return cls(client, opts)

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        system, turns = to_request(messages)
        optional = {"system": system, "stop_sequences": params.stop}
        started = time.perf_counter()
        with _translated():
            response = self.client.messages.create(
                model=model.model_id, max_tokens=params.max_tokens, messages=turns,
                **{k: v for k, v in optional.items() if v is not None})
            text = "".join(block.text for block in response.content if block.type == "text")
            usage = response.usage
        latency_ms = (time.perf_counter() - started) * 1000
        finish = FINISH_REASONS.get(response.stop_reason or "")
        if finish is None:
            raise UnexpectedProviderResponse(NAME, f"unknown stop_reason {response.stop_reason!r}")
        return Completion(text=text, model_id=response.model or model.model_id, finish_reason=finish,
                          prompt_tokens=usage.input_tokens if usage else 0,
                          completion_tokens=usage.output_tokens if usage else 0, latency_ms=latency_ms)
