"""Loss on assistant tokens only, found without relying on {% generation %} markers."""

from __future__ import annotations

import pytest

from providers.errors import ConfigError
from providers.local.masking import IGNORE, encode_chat

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan a party."},
        {"role": "assistant", "content": "- Pick a date"}, {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "- Send invites"}]

# a stock-style template with no generation markers (Llama 3 shape, with ChatML tokens)
PLAIN = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n\n{{ m['content'] }}<|im_end|>{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n\n{% endif %}")


def trained_spans(tokenizer, encoded) -> list[str]:
    spans, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    return spans + ([tokenizer.decode(current)] if current else [])


@pytest.mark.parametrize("template", ["builtin", "plain"])
def test_only_assistant_turns_and_their_end_token_are_trained(tiny_tokenizer, template: str) -> None:
    if template == "plain":
        tiny_tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
        tiny_tokenizer.chat_template = PLAIN
    encoded = encode_chat(tiny_tokenizer, CHAT, max_length=512)
    assert trained_spans(tiny_tokenizer, encoded) == ["- Pick a date<|im_end|>", "- Send invites<|im_end|>"]
    prompt_len = len(tiny_tokenizer.apply_chat_template(CHAT[:2], tokenize=True, add_generation_prompt=True,
                                                        return_dict=True)["input_ids"])
    assert set(encoded.labels[:prompt_len]) == {IGNORE}


def test_weight_zero_turns_are_context_and_truncation_keeps_labels_aligned(tiny_tokenizer) -> None:
    weighted = [*CHAT[:2], {**CHAT[2], "weight": 0}, *CHAT[3:]]
    encoded = encode_chat(tiny_tokenizer, weighted, max_length=512)
    assert trained_spans(tiny_tokenizer, encoded) == ["- Send invites<|im_end|>"]
    short = encode_chat(tiny_tokenizer, CHAT, max_length=10)
    assert len(short.input_ids) == len(short.labels) == 10


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny_tokenizer) -> None:
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = ("{% for m in messages %}{% if loop.last %}LAST {% endif %}{{ m['content'] }}"
                               "<|im_end|>{% endfor %}")
    with pytest.raises(ConfigError, match="prefix by prefix"):
        encode_chat(tokenizer, CHAT, max_length=512)
