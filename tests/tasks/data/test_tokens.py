"""Token counts with the target's tokenizer, offline, with the documented fallbacks said out loud."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.data.tokens import counter_for, distribution, token_counter
from tests.tasks.data.helpers import chat


def test_tiktoken_encodings_work_offline() -> None:
    o200k, cl100k = counter_for("o200k_base"), counter_for("cl100k_base")
    assert (o200k.exact, o200k.encode_length("hello world"), cl100k.encode_length("hello world")) == \
        (True, 2, 2)
    assert o200k.encode_length("Plan my week, please.") == 6


def test_example_tokens_add_the_chat_format_overhead() -> None:
    counter = counter_for("o200k_base")
    example = chat("hello world", "hello world", system="hello world")
    assert counter.example_tokens(example) == 3 + 3 * (4 + 2)
    assert counter.example_tokens(example) == counter.example_tokens(example)  # cached system prompt


def test_catalog_models_use_their_tokenizer_and_unknown_models_the_documented_ratio() -> None:
    known = token_counter("openai", "gpt-4o-mini-2024-07-18", "o200k_base")
    assert (known.name, known.exact, known.note) == ("o200k_base", True, None)
    unknown = token_counter("bedrock", "amazon.nova-lite-v1:0", "chars/6")
    assert (unknown.name, unknown.exact) == ("chars/6", False)
    assert unknown.note == ("the catalog does not list bedrock model 'amazon.nova-lite-v1:0'; counting with "
                            "chars/6 (an estimate)")
    assert unknown.encode_length("x" * 13) == 3


def test_a_hugging_face_tokenizer_that_is_not_available_falls_back_with_a_note() -> None:
    counter = counter_for("hf:nobody/no-such-model")
    assert (counter.name, counter.exact) == ("chars/4", False)
    assert "nobody/no-such-model" in counter.note


def test_distribution() -> None:
    assert distribution(np.array([5, 1, 9, 3, 7])) == {"min": 1, "median": 5, "p95": 9, "max": 9}
    assert distribution(np.array([], dtype=np.int64)) == {"min": 0, "median": 0, "p95": 0, "max": 0}


def test_a_hugging_face_tokenizer_in_the_local_cache_is_used(tmp_path, monkeypatch) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("huggingface_hub")
    snapshot = tmp_path / "hub" / "models--tiny--chat" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--tiny--chat" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--chat" / "refs" / "main").write_text("abc123")
    vocabulary = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(snapshot / "tokenizer.json"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    counter = counter_for("hf:tiny/chat")
    assert (counter.name, counter.exact) == ("hf:tiny/chat", True)
    assert counter.encode_length("hello world hello") == 3
