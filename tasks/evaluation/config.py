"""The `eval:` and `gate:` sections of the pipeline file."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from providers.base import Decoding
from tasks.evaluation.graders import GRADER_NAMES


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraderConfig(_Section):
    name: str = Field(description=f"one of: {', '.join(GRADER_NAMES)}")
    id: str | None = Field(default=None, description="how results name it; defaults to the name")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.id or self.name


class EvalConfig(_Section):
    graders: list[GraderConfig] = Field(default_factory=lambda: [GraderConfig(name="exact_match")], min_length=1)
    primary: str | None = Field(default=None, description="the grader id that decides; defaults to the first")
    max_items: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=4, ge=1, le=64)
    decoding: Decoding = Field(default_factory=Decoding)

    @field_validator("graders")
    @classmethod
    def _unique_ids(cls, graders: list[GraderConfig]) -> list[GraderConfig]:
        keys = [g.key for g in graders]
        if len(set(keys)) != len(keys):
            raise ValueError(f"grader ids must be unique (set `id` to tell them apart), got {keys}")
        return graders

    @field_validator("primary")
    @classmethod
    def _primary_is_a_grader(cls, primary: str | None, info: ValidationInfo) -> str | None:
        keys = [g.key for g in info.data.get("graders", [])]
        if primary is not None and keys and primary not in keys:
            raise ValueError(f"{primary!r} is not one of the graders; allowed values: {keys}")
        return primary

    @property
    def primary_key(self) -> str:
        return self.primary or self.graders[0].key


class GateConfig(_Section):
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_delta: float = Field(default=0.0, ge=0, le=1, description="smallest pass-rate gain worth accepting")
