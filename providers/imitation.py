"""Deterministic stand-ins for a base model and a fine-tuned model, for offline rehearsals.

`TunedImitation` answers with the assistant reply of the training example whose last user turn shares
the most words with the prompt: what a fine-tune that learned the task's format and voice does, without
weights. `BaseImitation` answers generically: a short paragraph for most prompts and, for a fixed share
chosen by hash, a well-formed list, so an evaluation sees a realistic non-zero baseline. Both are pure
functions of their inputs, so every run and every test sees the same answers.

Used by the fake provider and the loopback emulator; nothing here knows about HTTP or a vendor.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from providers.base import Message

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "give", "how", "i", "in",
    "is", "it", "me", "my", "of", "on", "or", "should", "the", "to", "what", "with", "you", "your", "we",
    "our", "us", "need", "some", "tips", "steps", "ways",
})


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)


def last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def count_tokens(text: str) -> int:
    """A rough whitespace token count, enough for usage fields of an imitation."""
    return len(text.split())


class BaseImitation:
    """A base model that has not learned the task: mostly prose, sometimes a list that happens to fit."""

    def __init__(self, well_formed_share: float = 0.2) -> None:
        self._threshold = int(well_formed_share * 1000)

    def reply(self, messages: list[Message]) -> str:
        prompt = last_user_text(messages)
        topic = prompt.strip().rstrip("?.!").lower() or "that"
        bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 1000
        if bucket < self._threshold:
            return "\n".join(
                f"- {verb} {detail}"
                for verb, detail in (
                    ("Define", "what success looks like"),
                    ("List", "the constraints you already know"),
                    ("Pick", "the first small step"),
                    ("Schedule", "time for it this week"),
                    ("Review", "how it went and adjust"),
                )
            )
        if bucket % 2:
            return (
                f"Great question! When it comes to \"{topic}\", the right approach depends on your "
                "situation. Think about what matters most to you, gather a little information, and take it "
                "one step at a time."
            )
        return (
            f"Here are a few thoughts on {topic}:\n\n- Timing\n- Budget\n- Your own priorities\n\n"
            "Hope this helps!"
        )


class TunedImitation:
    """A fine-tuned model: replies like the nearest training example (word overlap of the user turn)."""

    def __init__(self, examples: list[tuple[str, str]]) -> None:
        if not examples:
            raise ValueError("a tuned imitation needs at least one (prompt, answer) example")
        self._index = [(words(prompt), answer) for prompt, answer in examples]

    @classmethod
    def from_jsonl(cls, lines: Iterable[str]) -> TunedImitation:
        examples = []
        for line in lines:
            if not line.strip():
                continue
            messages = json.loads(line).get("messages", [])
            if messages and messages[-1].get("role") == "assistant":
                examples.append((last_user_text(messages[:-1]), str(messages[-1].get("content", ""))))
        return cls(examples)

    def reply(self, messages: list[Message]) -> str:
        query = words(last_user_text(messages))
        best_score, best_answer = -1.0, self._index[0][1]
        for prompt_words, answer in self._index:
            union = len(query | prompt_words) or 1
            score = len(query & prompt_words) / union
            if score > best_score:
                best_score, best_answer = score, answer
        return best_answer
