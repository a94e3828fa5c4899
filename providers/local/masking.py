"""Loss on assistant tokens only, for any chat template that renders conversations prefix by prefix.

Each assistant turn's span is found by rendering the conversation up to the turn (with the generation
prompt) and up to the end of the turn, and taking the difference. That needs no `{% generation %}` markers,
so stock templates (Llama 3.1, Mistral, ...) work as well as marked ones. The span ends at the turn's last
end-of-turn token: the template's separator after it is context, not something to learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import Message
from providers.errors import ConfigError

IGNORE = -100
"""The label PyTorch's cross-entropy skips."""


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _render(tokenizer, messages: list[Message], *, prompt: bool = False) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                              add_generation_prompt=prompt)["input_ids"])


def encode_chat(tokenizer, messages: list[Message], max_length: int) -> Encoded:
    """Token ids and labels for one conversation: labels are IGNORE outside assistant turns, and on
    assistant turns with `weight: 0` (the OpenAI JSONL convention). Truncated to `max_length`."""
    ids = _render(tokenizer, messages)
    labels = [IGNORE] * len(ids)
    eos = tokenizer.eos_token_id
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(_render(tokenizer, messages[:i], prompt=True)) if i else 0
        through = _render(tokenizer, messages[: i + 1])
        if ids[: len(through)] != through or start > len(through):
            raise ConfigError("the chat template does not render conversations prefix by prefix, so "
                              "assistant turns cannot be located; use a template that does (ChatML, "
                              "Llama 3, ...)")
        end = len(through)
        span = through[start:end]
        if eos in span:
            end = start + len(span) - span[::-1].index(eos)
        labels[start:end] = ids[start:end]
    return Encoded(ids[:max_length], labels[:max_length])
