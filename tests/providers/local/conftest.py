"""One tiny model for the whole session (built offline in about a second), and the data the jobs train on."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.base import PreparedDataset
from providers.local import LocalOptions, LocalProvider
from tests.conftest import QUICKSTART

pytest.importorskip("torch", reason="the local backend needs the [local] extra (installed by the dev extra)")

TINY = {"vocab_size": 400, "hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2,
        "num_kv_heads": 1, "pretrain_steps": 0}


@pytest.fixture(scope="session")
def quickstart_lines() -> list[str]:
    return (QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, quickstart_lines: list[str]) -> Path:
    from providers.local.tiny import TinyConfig, build_tiny, read_conversations

    corpus_file = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    corpus_file.write_text("".join(quickstart_lines[:60]), encoding="utf-8")
    out = tmp_path_factory.mktemp("models") / "tiny"
    return build_tiny(out, read_conversations([corpus_file]), TinyConfig(**TINY))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_base: Path):
    from providers.local.loading import load_tokenizer

    return load_tokenizer(tiny_base)


@pytest.fixture
def dataset(tmp_path: Path, quickstart_lines: list[str]) -> PreparedDataset:
    train, held_out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(quickstart_lines[:16]), encoding="utf-8")
    held_out.write_text("".join(quickstart_lines[16:20]), encoding="utf-8")
    return PreparedDataset(train_path=train, eval_path=held_out, sha256="d" * 64, train_examples=16,
                           eval_examples=4)


def local_provider(work_dir: Path, **knobs) -> LocalProvider:
    options = {"micro_batch_size": 4, "learning_rate": 0.01, "lora_r": 4, "lora_alpha": 8,
               "sequence_len": 256, **knobs}
    return LocalProvider(LocalOptions(work_dir=work_dir, **options))
