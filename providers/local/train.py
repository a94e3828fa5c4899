"""The local trainer, run as a subprocess: `python -m providers.local.train JOB_DIR`.

It reads JOB_DIR/config.json, trains a LoRA adapter with transformers + PEFT (Unsloth's loader when
configured), and reports through files only (see providers.local.jobdir): status, one metrics line per
optimizer step, checkpoints every `save_steps` and the finished adapter. It continues from the last
checkpoint when there is one, and stops at the next step once JOB_DIR/cancel exists. Any exception ends
the job FAILED with the error; a crash that kills the process is seen by the provider (no final status).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

from providers.local.config import TrainConfig
from providers.local.distributed import World
from providers.local.jobdir import JobDir, write_json
from providers.local.loading import (
    load_base,
    load_tokenizer,
    load_unsloth,
    merge_and_check,
    pick_device,
    use_unsloth,
)
from providers.local.masking import IGNORE, Encoded, encode_chat
from providers.local.parity import template_parity
from providers.local.tiny import TinyConfig, build_tiny, read_conversations

STATUS_EVERY_S = 0.25  # status.json at most this often: a write per step costs ~1 ms, a few % of a tiny step


class Cancelled(Exception):
    pass


def encode_file(tokenizer, path: Path, max_length: int) -> list[Encoded]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            encoded = encode_chat(tokenizer, json.loads(line)["messages"], max_length)
            if encoded.trained_tokens:
                rows.append(encoded)
    if not rows:
        raise ValueError(f"{path}: no example has an assistant token to train on within sequence_len")
    return rows


def collate(rows: list[Encoded], pad_id: int, device: str) -> dict:
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = [r.input_ids + [pad_id] * (width - len(r.input_ids)) for r in rows]
    mask = [[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in rows]
    labels = [r.labels + [IGNORE] * (width - len(r.labels)) for r in rows]
    return {"input_ids": torch.tensor(ids, device=device),
            "attention_mask": torch.tensor(mask, device=device),
            "labels": torch.tensor(labels, device=device)}


def build_model(cfg: TrainConfig, device: str):
    """The base with a fresh LoRA adapter, and its tokenizer."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    bf16 = cfg.bf16 is True or (cfg.bf16 == "auto" and device == "cuda")
    lora = {"r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout,
                "target_modules": cfg.lora_target_modules, "bias": "none"}
    if use_unsloth(cfg.backend, device):
        from unsloth import FastLanguageModel

        model, tokenizer = load_unsloth(cfg.base_model, max_length=cfg.sequence_len,
                                        load_in_4bit=cfg.load_in_4bit)
        model = FastLanguageModel.get_peft_model(model, **lora, use_gradient_checkpointing="unsloth",
                                                 random_state=cfg.seed)
        return model, load_tokenizer(cfg.base_model) if not tokenizer.chat_template else tokenizer
    tokenizer = load_tokenizer(cfg.base_model)
    model = load_base(cfg.base_model, device=device, dtype_name="bfloat16" if bf16 else "float32",
                      load_in_4bit=cfg.load_in_4bit)
    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, LoraConfig(**lora, task_type="CAUSAL_LM")), tokenizer


class Run:
    """One training run over a job directory: the loop, checkpoints, and what it reports."""

    def __init__(self, job: JobDir, cfg: TrainConfig, world: World | None = None,
                 device: str | None = None) -> None:
        import torch

        world = world or World()
        self.job, self.cfg, self.world = job, cfg, world
        job.root.mkdir(parents=True, exist_ok=True)
        self.device = device or pick_device(cfg.device)
        torch.manual_seed(cfg.seed)  # every rank builds the same adapter; DDP also broadcasts rank 0's
        self.model, self.tokenizer = build_model(cfg, self.device)
        self.train = encode_file(self.tokenizer, cfg.train_path, cfg.sequence_len)
        self.batches_per_epoch = math.ceil(len(self.train) / cfg.micro_batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.gradient_accumulation_steps)
        self.total_steps = self.steps_per_epoch * cfg.num_epochs
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        from transformers import get_scheduler

        warmup = (cfg.warmup_steps if cfg.warmup_steps is not None
                  else int((cfg.warmup_ratio or 0) * self.total_steps))
        self.scheduler = get_scheduler(cfg.lr_scheduler, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=self.total_steps)
        self.step = 0
        self.tokens = 0
        self.metrics_file = job.file("metrics.jsonl").open("a", encoding="utf-8") if world.main else None
        self.status_written = 0.0
        self.forward = world.wrap(self.model, self.device)

    def order(self, epoch: int) -> list[int]:
        """The epoch's example order: seeded by epoch, so a resumed run sees the same batches."""
        import torch

        generator = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)
        return torch.randperm(len(self.train), generator=generator).tolist()

    def resume(self) -> None:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        checkpoint = self.job.last_checkpoint()
        if checkpoint is None:
            return
        set_peft_model_state_dict(self.model, load_file(str(checkpoint / "adapter_model.safetensors")))
        state = torch.load(checkpoint / "trainer.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        meta = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        self.step, self.tokens = meta["step"], meta["tokens"]
        print(f"resuming from {checkpoint.name} (step {self.step} of {self.total_steps})", flush=True)

    def checkpoint(self) -> None:
        import torch

        if not self.world.main:
            return
        out = self.job.checkpoints / f"step-{self.step}"
        self.model.save_pretrained(str(out))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                   out / "trainer.pt")
        write_json(out / "state.json", {"step": self.step, "tokens": self.tokens})  # written last: complete

    def loop(self) -> None:
        cfg, ga = self.cfg, self.cfg.gradient_accumulation_steps
        self.model.train()
        started, tokens_at_start = time.perf_counter(), self.tokens
        for epoch in range(self.step // self.steps_per_epoch, cfg.num_epochs):
            order = self.order(epoch)
            batches = [order[i:i + cfg.micro_batch_size] for i in range(0, len(order), cfg.micro_batch_size)]
            done_in_epoch = self.step - epoch * self.steps_per_epoch
            for first in range(done_in_epoch * ga, len(batches), ga):
                loss = self.optimizer_step([batches[i] for i in range(first, min(first + ga, len(batches)))])
                elapsed = time.perf_counter() - started
                self.report(epoch, loss, (self.tokens - tokens_at_start) / elapsed if elapsed else 0.0)
                if self.step % cfg.save_steps == 0 and self.step < self.total_steps:
                    self.checkpoint()
                if self.cancel_requested():
                    raise Cancelled

    def cancel_requested(self) -> bool:
        """All ranks stop at the same step (one that stopped alone would leave the others waiting)."""
        if not self.world.distributed:
            return self.job.cancel_requested
        return self.world.total([float(self.job.cancel_requested)], self.device)[0] > 0

    def optimizer_step(self, group: list[list[int]]) -> float:
        import torch

        total, tokens = 0.0, 0
        for batch in group:
            mine, weight = self.world.shard(batch, [self.train[i].trained_tokens for i in batch])
            # a rank left without examples still runs one, weighted 0, so that DDP's all-reduce completes
            inputs = collate([self.train[i] for i in mine or batch[:1]], self.tokenizer.pad_token_id,
                             self.device)
            loss = self.forward(**inputs).loss * weight / len(group)
            loss.backward()
            total += loss.detach().item()
            tokens += int(inputs["attention_mask"].sum()) if mine else 0
        total, tokens = self.world.total([total, tokens], self.device)
        total /= self.world.size
        self.tokens += int(tokens)
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                       self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total

    def report(self, epoch: int, loss: float, tokens_per_s: float) -> None:
        if not self.world.main:
            return
        row = {"step": self.step, "epoch": epoch + 1, "train_loss": round(loss, 5),
               "learning_rate": self.scheduler.get_last_lr()[0], "tokens": self.tokens,
               "tokens_per_s": round(tokens_per_s, 1)}
        self.metrics_file.write(json.dumps(row) + "\n")
        now = time.monotonic()
        if now - self.status_written >= STATUS_EVERY_S or self.step == self.total_steps:
            self.metrics_file.flush()
            self.job.write_status(state="running", step=self.step, total_steps=self.total_steps,
                                  metrics={k: v for k, v in row.items() if k != "step"})
            self.status_written = now

    def eval_loss(self) -> float | None:
        import torch

        if self.cfg.eval_path is None or not self.cfg.eval_path.exists():
            return None
        rows = encode_file(self.tokenizer, self.cfg.eval_path, self.cfg.sequence_len)
        self.model.eval()
        losses, counts = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(rows), self.cfg.micro_batch_size):
                chunk = rows[i:i + self.cfg.micro_batch_size]
                n = sum(r.trained_tokens for r in chunk)
                losses += float(self.model(**collate(chunk, self.tokenizer.pad_token_id,
                                                     self.device)).loss) * n
                counts += n
        return losses / counts

    def check_template_parity(self) -> dict:
        """The training rows rendered the way the serving side renders them (providers/local/parity.py)."""
        serving = load_tokenizer(self.job.adapter)  # what evaluation and serve-model load beside the adapter
        return template_parity(self.tokenizer, serving, _base_template(self.cfg.base_model),
                               self.cfg.train_path)

    def save(self) -> dict:
        """The adapter with the tokenizer and chat template beside it; merged model and parity when asked."""
        self.model.save_pretrained(str(self.job.adapter))
        self.tokenizer.save_pretrained(str(self.job.adapter))
        for path in self.job.adapter.iterdir():  # PEFT writes 0600; a serving container runs as another user
            path.chmod(0o644)
        results: dict = {}
        parity = self.check_template_parity()
        write_json(self.job.file("template_parity.json"), parity)
        results["template_parity_ok"] = 1.0 if parity["ok"] else 0.0
        if self.cfg.merge_lora and not self.cfg.load_in_4bit:
            sample = self.train[0].input_ids
            results["merge_max_logit_diff"] = merge_and_check(self.cfg.base_model, self.job.adapter,
                                                              self.job.merged, sample)
        return results


def _base_template(base_model: str) -> str | None:
    try:
        return load_tokenizer(base_model).chat_template
    except Exception:  # noqa: BLE001 - a base without a usable tokenizer of its own has no template to compare
        return None


def prepare_base(job: JobDir, cfg: TrainConfig, world: World) -> None:
    """Check the base exists, or build the tiny one (rank 0 builds; the other ranks wait for it)."""
    base = Path(cfg.base_model)
    if cfg.build_tiny_steps is None and base.is_absolute() and not base.exists():
        raise FileNotFoundError(f"the base model directory {base} does not exist")
    if cfg.build_tiny_steps is not None and world.main and not base.exists():
        job.write_status(state="running", message="building the tiny base model")
        build_tiny(base, read_conversations([cfg.train_path]),
                   TinyConfig(pretrain_steps=cfg.build_tiny_steps))
    world.barrier()


def train(job: JobDir, cfg: TrainConfig, world: World, device: str) -> None:
    """Train and, on rank 0, save the adapter and write the final status."""
    if world.main:
        job.write_status(state="running", message="loading the base model", pid=os.getpid())
    run = Run(job, cfg, world, device)
    run.resume()
    if world.main:
        job.write_status(state="running", step=run.step, total_steps=run.total_steps, message="training")
    run.loop()
    world.barrier()  # every rank finished its last step before rank 0 saves and the group goes away
    if not world.main:
        return
    metrics = {**job.status().get("metrics", {}), **run.save()}
    loss = run.eval_loss()
    if loss is not None:
        metrics["eval_loss"] = round(loss, 5)
    job.write_status(state="succeeded", step=run.total_steps, message="adapter saved", metrics=metrics)


def main(job_root: str) -> int:
    job, world = JobDir(Path(job_root)), World.from_env()
    try:
        cfg = TrainConfig.model_validate_json(job.file("config.json").read_text(encoding="utf-8"))
        if job.cancel_requested:
            raise Cancelled
        device = world.device(pick_device(cfg.device))
        world.start(device)
        prepare_base(job, cfg, world)
        train(job, cfg, world, device)
        world.stop()
        return 0
    except Cancelled:
        if world.main:
            job.write_status(state="cancelled", message="cancelled at a step boundary")
        return 0
    except Exception as exc:  # noqa: BLE001 - the job's own failure: reported, traceback in the log
        traceback.print_exc()
        job.write_status(state="failed", message=f"{'' if world.main else f'rank {world.rank}: '}"
                                                 f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
