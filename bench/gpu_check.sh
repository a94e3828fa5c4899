#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the local trainer in bf16 and in 4-bit (QLoRA through bitsandbytes) on
# the same ~20 M-parameter offline model, checking CUDA is really used, with tokens/s for each. It needs
# the [local,qlora] extras in $PYTHON's environment (no download happens: the model is built here) and
# stops itself after 8 minutes. With more than one GPU it then trains through the provider with
# num_processes = the GPU count (torchrun, DDP over nccl) and with one process, on the same data and global
# batch, and prints both tokens/s and the loss curves' largest relative difference.
#     bash bench/gpu_check.sh            PYTHON=/path/to/python bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 480 "$PYTHON" - <<'PY'
import json, tempfile, time
from pathlib import Path

import torch

from providers.local.config import TrainConfig
from providers.local.jobdir import JobDir
from providers.local.tiny import TinyConfig, build_tiny, read_conversations
from providers.local.train import Run

assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)
root = Path(tempfile.mkdtemp(prefix="loraflow-gpu-"))
data = Path("examples/quickstart/data/bullets.jsonl")
shape = TinyConfig(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_layers=6, num_heads=8,
                   num_kv_heads=4, max_positions=512)
base = build_tiny(root / "base", read_conversations([data]), shape)
results = {}
for mode in ("bf16", "4bit"):
    knobs = dict(bf16=True) if mode == "bf16" else dict(adapter="qlora", load_in_4bit=True)
    cfg = TrainConfig(base_model=str(base), train_path=data, num_epochs=2, micro_batch_size=16, learning_rate=2e-4,
                      lora_target_modules="all-linear", sequence_len=256, save_steps=10**6, device="cuda", **knobs)
    torch.cuda.reset_peak_memory_stats()
    run = Run(JobDir(root / mode), cfg)
    assert all(p.is_cuda for p in run.model.parameters() if p.requires_grad), "LoRA weights are not on the GPU"
    started = time.perf_counter()
    run.loop()
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    results[mode] = {"tokens_per_s": round(run.tokens / wall), "steps": run.step, "wall_s": round(wall, 1),
                     "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                     "last_loss": json.loads((root / mode / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"]}
    print(mode, results[mode], flush=True)
print(json.dumps(results))
PY
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "${GPUS:-0}" -gt 1 ] || { echo "one GPU: no multi-GPU case"; exit 0; }
GPUS=$GPUS timeout 480 "$PYTHON" - <<'PY'
import json, os, tempfile, time
from pathlib import Path

from providers.base import PreparedDataset, TrainingSpec
from providers.local import LocalOptions, LocalProvider
from providers.local.tiny import TinyConfig, build_tiny, read_conversations

gpus = int(os.environ["GPUS"])
root = Path(tempfile.mkdtemp(prefix="loraflow-ddp-"))
data = Path("examples/quickstart/data/bullets.jsonl")
shape = TinyConfig(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_layers=6, num_heads=8,
                   num_kv_heads=4, max_positions=512)
base = build_tiny(root / "base", read_conversations([data]), shape)
curves, speed = {}, {}
for processes in (1, gpus):
    provider = LocalProvider(LocalOptions(work_dir=root / f"work-{processes}", num_processes=processes, device="cuda",
                                          micro_batch_size=16 * gpus, lora_dropout=0.0, sequence_len=256,
                                          learning_rate=2e-4, save_steps=10**6))
    dataset = provider.upload(PreparedDataset(train_path=data, eval_path=None, sha256="f" * 64,
                                              train_examples=640, eval_examples=0))
    job = provider.create_job(TrainingSpec(base_model=str(base), epochs=2, seed=7), dataset,
                              idempotency_key=f"ddp-{processes}")
    started = time.perf_counter()
    while not (status := provider.get_job(job)).state.is_terminal:
        time.sleep(0.5)
    wall = time.perf_counter() - started
    job_dir = provider.work_dir / "jobs" / job.job_id
    assert status.state.value == "succeeded", (job_dir / "train.log").read_text()[-3000:]
    rows = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    curves[processes] = [row["train_loss"] for row in rows]
    speed[processes] = {"tokens_per_s": rows[-1]["tokens_per_s"], "wall_s": round(wall, 1), "steps": len(rows)}
    print(processes, "process(es):", speed[processes], flush=True)
worst = max(abs(a - b) / a for a, b in zip(curves[1], curves[gpus], strict=True))
print(json.dumps({"gpus": gpus, "speed": speed, "loss_curve_worst_relative_difference": worst}))
PY
