"""Tokens/s of loraflow's local trainer against a plain transformers Trainer, same tiny model, same run.

    .venv/bin/python bench/local_train.py [--examples 200] [--epochs 2] [--repeats 2]

Both train the same LoRA (r=8, q/k/v/o) on the same encoded quickstart rows with the same batch size and
optimizer; tokens are the non-pad tokens of the batches, so the two numbers compare like with like. The
target is loraflow within 5 % of the Trainer. CPU timings are noisy on a shared machine: take the best of
the repeats, and rerun when the load is high.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "data" / "bullets.jsonl"


def loraflow_run(base: Path, data: Path, root: Path, epochs: int, batch: int) -> float:
    from providers.local.config import TrainConfig
    from providers.local.jobdir import JobDir
    from providers.local.train import Run

    cfg = TrainConfig(base_model=str(base), train_path=data, num_epochs=epochs, micro_batch_size=batch,
                      learning_rate=3e-3, sequence_len=256, save_steps=10**6, device="cpu")
    run = Run(JobDir(root), cfg)
    started = time.perf_counter()
    run.loop()
    return run.tokens / (time.perf_counter() - started)


def trainer_run(base: Path, data: Path, root: Path, epochs: int, batch: int) -> float:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from providers.local.loading import load_tokenizer
    from providers.local.train import collate, encode_file

    tokenizer = load_tokenizer(base)
    rows = encode_file(tokenizer, data, 256)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                           LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias="none",
                                      task_type="CAUSAL_LM",
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    args = TrainingArguments(output_dir=str(root), num_train_epochs=epochs, per_device_train_batch_size=batch,
                             learning_rate=3e-3, lr_scheduler_type="cosine", logging_steps=10**6,
                             save_strategy="no", report_to="none", use_cpu=True, dataloader_num_workers=0,
                             remove_unused_columns=False, seed=42, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=lambda batch_rows: collate(batch_rows, tokenizer.pad_token_id, "cpu"))
    per_epoch = sum(len(r.input_ids) for r in rows)  # non-pad tokens, whatever the shuffle
    started = time.perf_counter()
    trainer.train()
    return per_epoch * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from providers.local.tiny import TinyConfig, build_tiny, read_conversations

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "train.jsonl"
        data.write_text("\n".join(QUICKSTART.read_text(encoding="utf-8").splitlines()[:args.examples]) + "\n")
        base = build_tiny(root / "tiny", read_conversations([data]), TinyConfig())
        results: dict[str, list[float]] = {"loraflow": [], "transformers.Trainer": []}
        runs = {"loraflow": loraflow_run, "transformers.Trainer": trainer_run}
        for i in range(args.repeats):
            for name in sorted(runs, reverse=bool(i % 2)):  # alternate who goes first: the first run warms up
                results[name].append(runs[name](base, data, root / f"{i}-{name}", args.epochs, args.batch))
    best = {name: max(values) for name, values in results.items()}
    ratio = best["loraflow"] / best["transformers.Trainer"]
    print(json.dumps({"tokens_per_s": {k: [round(v) for v in vs] for k, vs in results.items()},
                      "best_ratio_loraflow_over_trainer": round(ratio, 3),
                      "within_5_percent": ratio >= 0.95 or math.isclose(ratio, 0.95)}, indent=2))


if __name__ == "__main__":
    main()
