"""The `data:` section of the pipeline file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="chat JSONL in the OpenAI shape, relative to the pipeline file")
    eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_salt: str = Field(default="loraflow", description="changing it reshuffles the split")
    min_train_examples: int = Field(default=10, ge=1)
