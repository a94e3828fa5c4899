"""The local provider's options, with Axolotl's key names where Axolotl has the knob.

`LocalOptions` is what a pipeline's `provider.options` holds; `TrainConfig` is one job's complete training
configuration (the portable TrainingSpec merged with the options) as the trainer subprocess reads it.
A knob set in both places must agree: `training.epochs: 3` and `num_epochs: 5` is an error, not a choice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from providers.base import TrainingSpec
from providers.errors import ConfigError

NAME = "local"
MAX_EPOCHS = 50

# TrainingSpec field -> the Axolotl key it fills
SPEC_KEYS = {"epochs": "num_epochs", "learning_rate": "learning_rate", "batch_size": "micro_batch_size",
             "lora_r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
             "lora_target_modules": "lora_target_modules", "seed": "seed"}


def default_work_dir() -> Path:
    return Path(os.environ.get("LORAFLOW_HOME") or Path.home() / ".loraflow").expanduser() / "local"


class _Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: Literal["lora", "qlora"] = "lora"
    load_in_4bit: bool = False
    lora_r: int | None = Field(default=None, ge=1, le=512)
    lora_alpha: int | None = Field(default=None, ge=1, le=4096)
    lora_dropout: float | None = Field(default=None, ge=0, lt=1)
    lora_target_modules: list[str] | Literal["all-linear"] | None = None
    num_epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    micro_batch_size: int | None = Field(default=None, ge=1, le=512)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    warmup_steps: int | None = Field(default=None, ge=0)
    warmup_ratio: float | None = Field(default=None, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    sequence_len: int = Field(default=2048, ge=16, le=131072)
    seed: int | None = Field(default=None, ge=0)
    save_steps: int = Field(default=50, ge=1, description="checkpoint every N optimizer steps (resume point)")
    num_processes: int = Field(default=1, ge=1, le=64, description="trainer processes started by torchrun, "
                               "one per GPU (DDP over nccl), or over gloo on the CPU; micro_batch_size is "
                               "the global batch, split across them")
    merge_lora: bool = Field(default=False, description="also save a merged model and check its parity")
    bf16: Literal["auto", True, False] = "auto"
    backend: Literal["auto", "transformers", "unsloth"] = Field(
        default="auto", description="auto: Unsloth when it is installed and a GPU is present")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _axolotl_rules(self):
        if self.adapter == "qlora" and not self.load_in_4bit:
            raise ValueError("adapter: qlora needs load_in_4bit: true")
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("set warmup_steps or warmup_ratio, not both")
        return self


class LocalOptions(_Knobs):
    """`provider.options` for `provider: local`."""

    work_dir: Path = Field(default_factory=default_work_dir,
                           description="datasets, jobs and built tiny models go here")
    python: str | None = Field(default=None,
                               description="interpreter for the trainer (e.g. an Unsloth venv); "
                                           "default: the current one")
    tiny_pretrain_steps: int = Field(default=300, ge=0, le=20000,
                                     description="warm-up steps when a `tiny:NAME` base model is built")


class TrainConfig(_Knobs):
    """One job's training configuration, fully resolved, as written to the job directory."""

    base_model: str = Field(description="a local directory or a Hugging Face id, as from_pretrained takes it")
    build_tiny_steps: int | None = Field(default=None, description="build a tiny base at base_model first, "
                                                                   "warmed up for this many steps")
    train_path: Path
    eval_path: Path | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | Literal["all-linear"] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    num_epochs: int = 1
    micro_batch_size: int = 4
    learning_rate: float = 2e-4
    seed: int = 42


def train_config(spec: TrainingSpec, options: LocalOptions, *, base_model: str, train_path: Path,
                 eval_path: Path | None, build_tiny_steps: int | None = None) -> TrainConfig:
    """Merge the spec into the options; ConfigError names the knob on a conflict or a bad value."""
    knobs = options.model_dump(exclude_none=True, exclude={"work_dir", "python", "tiny_pretrain_steps"})
    for field, key in SPEC_KEYS.items():
        value = getattr(spec, field)
        if value is None:
            continue
        if key in knobs and knobs[key] != value:
            raise ConfigError(f"training.{field} is {value!r} but provider.options.{key} is {knobs[key]!r}; "
                              f"set one of them")
        knobs[key] = value
    if spec.epochs is not None and spec.epochs > MAX_EPOCHS:
        raise ConfigError(f"training.epochs: the local provider allows 1 to {MAX_EPOCHS}, got {spec.epochs}")
    try:
        return TrainConfig(**knobs, base_model=base_model, train_path=train_path, eval_path=eval_path,
                           build_tiny_steps=build_tiny_steps)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where="local provider", prefix="provider.options") from exc


def parse_options(options: dict) -> LocalOptions:
    try:
        return LocalOptions.model_validate(options)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where="local provider", prefix="provider.options") from exc
