"""Tiny chat models built offline from a config: a byte-level BPE tokenizer, a ChatML template and a small
Qwen2-shaped model, saved like any Hugging Face checkpoint. No download, no GPU.

They exist so that tests and the quickstart train for real on a CPU in seconds. `pretrain_steps > 0` warms
the model up on the given conversations (every token trained, answers rewritten as prose) so the base
answers something in the chat format before the LoRA teaches it the task.

    python -m providers.local.tiny OUT_DIR --corpus data.jsonl [--pretrain-steps 300]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from providers.base import Message

CHAT_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}"
    "{%- endgeneration %}{{- '\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


class TinyConfig(BaseModel):
    """The shape of a tiny model and how long to warm it up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(default=2048, ge=300, le=32768)
    hidden_size: int = Field(default=128, ge=16, le=1024)
    intermediate_size: int = Field(default=256, ge=16, le=4096)
    num_layers: int = Field(default=2, ge=1, le=12)
    num_heads: int = Field(default=4, ge=1, le=16)
    num_kv_heads: int = Field(default=2, ge=1, le=16)
    max_positions: int = Field(default=512, ge=64, le=4096)
    pretrain_steps: int = Field(default=0, ge=0, le=20000)
    pretrain_batch: int = Field(default=16, ge=1, le=256)
    pretrain_lr: float = Field(default=3e-3, gt=0, le=1)
    seed: int = 0


def prose(text: str) -> str:
    """An answer as one paragraph: list markers dropped, each line a sentence."""
    lines = [_BULLET.sub("", line).strip().rstrip(".") for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text.strip()
    return ". ".join(lines) + "."


def read_conversations(paths: Iterable[Path]) -> list[list[Message]]:
    rows = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line)["messages"])
    return rows


def as_generic_chat(conversations: Sequence[list[Message]]) -> list[list[Message]]:
    """The conversations with every assistant turn rewritten as prose: content without the target format."""
    return [[{**m, "content": prose(m["content"])} if m["role"] == "assistant" else m for m in conv]
            for conv in conversations]


def build_tokenizer(texts: Iterable[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # Qwen2's exact normalizer and pre-tokenizer: AutoTokenizer rebuilds them on reload (reference G1)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                 pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    hf.chat_template = CHAT_TEMPLATE
    hf.model_max_length = 4096
    return hf


def build_tiny(out_dir: Path, corpus: Sequence[list[Message]], config: TinyConfig | None = None) -> Path:
    """Build, optionally warm up, and save a tiny chat model to `out_dir` (written to a temp dir, then
    renamed)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = config or TinyConfig()
    torch.manual_seed(config.seed)
    chats = as_generic_chat(corpus)
    texts = [m["content"] for conv in corpus for m in conv] + [m["content"] for conv in chats for m in conv]
    tokenizer = build_tokenizer(texts, config.vocab_size)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_positions,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=True))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if config.pretrain_steps and chats:
        _warm_up(model, tokenizer, chats, config)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "loraflow_tiny.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
    try:
        staging.rename(out_dir)
    except OSError:  # another job built it first: theirs stands
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _warm_up(model, tokenizer, chats: Sequence[list[Message]], config: TinyConfig) -> None:
    """Full-parameter causal-LM training on the rendered conversations, every token trained."""
    import torch

    rows = [tokenizer.apply_chat_template(c, tokenize=True,
                                          return_dict=True)["input_ids"][:config.max_positions]
            for c in chats]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr)
    rng = random.Random(config.seed)
    model.train()
    for step in range(config.pretrain_steps):
        batch = rng.sample(rows, min(config.pretrain_batch, len(rows)))
        width = max(len(r) for r in batch)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in batch])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in batch])
        labels = ids.masked_fill(mask == 0, -100)
        for group in optimizer.param_groups:  # cosine decay keeps the last steps from undoing the first
            group["lr"] = config.pretrain_lr * 0.5 * (1 + math.cos(math.pi * step / config.pretrain_steps))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True, help="chat JSONL (repeatable)")
    parser.add_argument("--config", type=Path, help="JSON file with TinyConfig fields")
    parser.add_argument("--pretrain-steps", type=int)
    args = parser.parse_args(argv)
    fields = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
    if args.pretrain_steps is not None:
        fields["pretrain_steps"] = args.pretrain_steps
    out = build_tiny(args.out_dir, read_conversations(args.corpus), TinyConfig.model_validate(fields))
    print(out)


if __name__ == "__main__":
    main()
