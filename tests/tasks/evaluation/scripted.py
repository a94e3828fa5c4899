"""Scripted chat models for evaluation tests: deterministic answers, scripted failures, every call
recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import ClassVar

from providers.base import Completion, Decoding, Message, ModelRef
from providers.errors import ProviderError

Reply = Callable[[str, list[Message]], str]


class ScriptedChat:
    """Answers with `reply(model_id, messages)`; `failures` maps a substring of the last user turn to the
    errors the next calls with it raise, in order."""

    name: ClassVar[str] = "scripted"

    def __init__(self, reply: Reply, failures: dict[str, list[ProviderError]] | None = None,
                 finish_reason: Callable[[str, list[Message]], str] | None = None) -> None:
        self.reply, self.failures = reply, {k: list(v) for k, v in (failures or {}).items()}
        self.finish_reason = finish_reason
        self.calls: list[tuple[str, str, Decoding]] = []
        self._lock = threading.Lock()

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        prompt = str(messages[-1].get("content", ""))
        with self._lock:
            self.calls.append((model.model_id, prompt, params))
            for needle, errors in self.failures.items():
                if needle in prompt and errors:
                    raise errors.pop(0)
        text = self.reply(model.model_id, messages)
        finish = self.finish_reason(model.model_id, messages) if self.finish_reason else "stop"
        return Completion(text=text, model_id=model.model_id, finish_reason=finish,
                          completion_tokens=len(text.split()),
                          prompt_tokens=len(prompt.split()), latency_ms=5.0)


def verdict_judge(verdict: Callable[[str], dict | str]) -> ScriptedChat:
    """A judge that answers `verdict(user prompt)` as JSON (or raw text when it returns a str)."""
    def reply(model_id: str, messages: list[Message]) -> str:
        value = verdict(str(messages[-1]["content"]))
        return value if isinstance(value, str) else json.dumps(value)
    return ScriptedChat(reply)
