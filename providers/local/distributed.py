"""Data-parallel training for the local trainer: one process per device, started by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a world of one and every call below is
a no-op, so the single-process trainer runs unchanged. Gradients are averaged by DistributedDataParallel
(gloo on the CPU, nccl on GPUs); only rank 0 writes the job directory (status, metrics, checkpoints, the
adapter).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        return cls(rank=int(os.environ.get("RANK", "0")), size=int(os.environ.get("WORLD_SIZE", "1")),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, picked: str) -> str:
        """The device of this rank: its own GPU under torchrun, else what the trainer picked."""
        if picked == "cuda" and self.distributed:
            import torch

            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return picked

    def start(self, device: str) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    def stop(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, model: Any, device: str) -> Any:
        """The module to run forward through: DDP around the PEFT model (kept unwrapped for saving)."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, batch: list[int], tokens: list[int]) -> tuple[list[int], float]:
        """This rank's examples of a micro-batch and the weight of its mean loss; `tokens` are the trained
        tokens of each example of `batch`. The loss is a mean over the batch's trained tokens, and DDP
        averages gradients over ranks: weighting each rank by its share of those tokens times the world size
        makes that average the one-process gradient exactly, also when a rank is left with nothing."""
        mine = batch[self.rank::self.size]
        share = sum(tokens[self.rank::self.size]) / sum(tokens)
        return mine, share * self.size

    def total(self, values: list[float], device: str) -> list[float]:
        """Each value summed over the ranks."""
        if not self.distributed:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64 if not device.startswith("cuda") else torch.float32,
                              device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()
