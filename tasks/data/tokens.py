"""Token counts with the target model's tokenizer, offline.

The catalog names the tokenizer: a tiktoken encoding ("o200k_base", "cl100k_base"), a Hugging Face
tokenizer ("hf:<repo>", used only when `tokenizers` is installed and the repo is already in the local
cache; nothing is downloaded), or a documented characters-per-token ratio ("chars/<n>"). tiktoken's
encodings come from the `bpe-openai` wheel, which ships OpenAI's files byte for byte: they seed
tiktoken's cache (reference/providers.md 8), or `bpe_openai` counts directly. Whatever is missing falls
back to a ratio, and `note` says so.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from providers.catalog import model_facts

# the names tiktoken gives its cached copies: sha1 of the download URL
_TIKTOKEN_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
# chat formatting around each message and before the reply (OpenAI's published counting recipe)
_PER_MESSAGE = 4
_PER_EXAMPLE = 3
_SYSTEM_PROMPTS_KEPT = 256
_PIECE = 1 << 18  # characters: longer texts are counted in pieces (bounded memory)


class TokenCounter:
    """Counts tokens the way the target bills them. `exact` is False for a ratio estimate.

    The tokenizer loads on first use, so a process that only hands the counting to another one never
    pays for it.
    """

    def __init__(self, name: str, exact: bool, load: Callable[[], Callable[[str], int]],
                 note: str | None = None) -> None:
        self.name, self.exact, self.note = name, exact, note
        self._load, self._encode = load, None
        self._system: dict[str, int] = {}

    def with_note(self, note: str) -> TokenCounter:
        return TokenCounter(self.name, self.exact, self._load, note)

    def encode_length(self, text: str) -> int:
        if self._encode is None:
            self._encode = self._load()
        return self._encode(text)

    def example_tokens(self, example: dict[str, Any]) -> int:
        """Tokens of one chat example: every message's text plus the chat format's fixed overhead."""
        if self._encode is None:
            self._encode = self._load()
        encode, total = self._encode, _PER_EXAMPLE
        for message in example["messages"]:
            total += _PER_MESSAGE
            content = message.get("content")
            if content:
                total += self._system_tokens(content) if message.get("role") == "system" else encode(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                total += self.encode_length(function.get("name", "")) + self.encode_length(
                    str(function.get("arguments", "")))
        if "tools" in example:
            total += self.encode_length(str(example["tools"]))
        return total

    def batch_tokens(self, examples: list[dict[str, Any]]) -> np.ndarray:
        return np.fromiter((self.example_tokens(e) for e in examples), dtype=np.int64, count=len(examples))

    def _system_tokens(self, text: str) -> int:
        # datasets repeat a handful of system prompts: count each once
        count = self._system.get(text)
        if count is None:
            if len(self._system) >= _SYSTEM_PROMPTS_KEPT:
                self._system.clear()
            count = self._system[text] = self.encode_length(text)
        return count


def token_counter(provider: str, model: str, fallback: str) -> TokenCounter:
    """The counter for `model` on `provider`; `fallback` (the format's documented ratio or encoding) is
    used when the catalog does not name a tokenizer."""
    facts = model_facts(provider, model)
    if facts is not None and facts.tokenizer:
        return counter_for(facts.tokenizer)
    counter = counter_for(fallback)
    missing = f"the catalog does not list {provider} model {model!r}" if model else "no model given"
    return counter.with_note(f"{missing}; counting with {counter.name}"
                             + ("" if counter.exact else " (an estimate)"))


def counter_for(spec: str) -> TokenCounter:
    """A counter for a tokenizer spec: a tiktoken encoding name, "hf:<repo>" or "chars/<n>"."""
    if spec.startswith("chars/"):
        return _ratio(float(spec.removeprefix("chars/")))
    if spec.startswith("hf:"):
        return _hugging_face(spec.removeprefix("hf:"))
    if not _bpe_available(spec):
        return _ratio(4.0, f"neither tiktoken nor bpe-openai provides {spec!r} here; "
                           "estimating 4 characters a token")
    return TokenCounter(spec, True, lambda: _bpe(spec))


def _ratio(chars_per_token: float, note: str | None = None) -> TokenCounter:
    def count(text: str) -> int:
        return math.ceil(len(text) / chars_per_token)

    return TokenCounter(f"chars/{chars_per_token:g}", False, lambda: count, note)


def _bpe_available(name: str) -> bool:
    return _packed_encoding(name) is not None


def _packed_encoding(name: str) -> Path | None:
    # locate the wheel's file without importing bpe_openai, whose import loads an encoding of its own
    spec = importlib.util.find_spec("bpe_openai")
    path = Path(spec.submodule_search_locations[0], "data", f"{name}.tiktoken.gz") if spec else None
    return path if path is not None and path.is_file() else None


def _bpe(name: str) -> Callable[[str], int]:
    if importlib.util.find_spec("tiktoken") is not None and _seed_tiktoken_cache(name):
        import tiktoken

        encoding = tiktoken.get_encoding(name)
    else:
        import bpe_openai

        encoding = bpe_openai.get_encoding(name)
    core = getattr(encoding, "_core_bpe", encoding)  # tiktoken's Rust encoder, without its Python wrapper

    def count(text: str) -> int:
        if len(text) > _PIECE:
            return _count_in_pieces(text, count)
        try:
            return len(core.encode_ordinary(text))
        except UnicodeEncodeError:  # a lone surrogate: the wrapper replaces it
            return len(encoding.encode_ordinary(text))

    return count


def _count_in_pieces(text: str, count: Callable[[str], int]) -> int:
    """Tokens of a long text, counted a piece at a time so that no token list grows with the text. Pieces
    end before a space that follows a non-space: the tokenizer's pre-split starts a word at its leading
    space, so the sum equals the whole text's count."""
    total, start = 0, 0
    while len(text) - start > _PIECE:
        end = start + _PIECE
        cut = text.rfind(" ", start + 1, end)
        while cut > start and text[cut - 1].isspace():
            cut = text.rfind(" ", start + 1, cut)
        cut = cut if cut > start else end
        total += count(text[start:cut])
        start = cut
    return total + count(text[start:])


def _seed_tiktoken_cache(name: str) -> bool:
    """Put OpenAI's encoding file where tiktoken looks for it, from the bpe-openai wheel; False if
    unavailable."""
    url = _TIKTOKEN_URLS.get(name)
    if url is None:
        return False
    from tasks.registry import loraflow_home

    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(loraflow_home() / "tiktoken")))
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return True
    packed_path = _packed_encoding(name)
    if packed_path is None:
        return False
    packed = packed_path.read_bytes()
    from tasks.rundir import atomic_write

    atomic_write(target, gzip.decompress(packed))
    return True


def _hugging_face(repo: str) -> TokenCounter:
    try:
        from huggingface_hub import try_to_load_from_cache
        from tokenizers import Tokenizer
    except ImportError:
        return _ratio(4.0, f"`tokenizers` is not installed, so {repo} cannot be loaded; "
                           "estimating 4 characters a token")
    path = try_to_load_from_cache(repo, "tokenizer.json", cache_dir=os.environ.get("HF_HUB_CACHE"))
    if not isinstance(path, str):
        return _ratio(4.0, f"{repo} is not in the local Hugging Face cache (loraflow never downloads it); "
                           "estimating 4 characters a token")
    def load() -> Callable[[str], int]:
        tokenizer = Tokenizer.from_file(path)
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)

    return TokenCounter(f"hf:{repo}", True, load)


def distribution(counts: np.ndarray) -> dict[str, int]:
    """min/median/p95/max of per-example token counts (zeros when there are none)."""
    if counts.size == 0:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    low, median, p95, high = np.percentile(counts, [0, 50, 95, 100], method="nearest")
    return {"min": int(low), "median": int(median), "p95": int(p95), "max": int(high)}
