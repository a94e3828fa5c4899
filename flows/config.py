"""The pipeline file (YAML) as pydantic models.

Every section forbids unknown keys; a mistake becomes one ConfigError line naming the key path and,
where there is a fixed set, the allowed values. Paths in the file are relative to the file itself.
`loraflow config schema` prints the JSON Schema of `Pipeline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from providers import PROVIDERS, provider_class
from providers.base import Decoding, TrainingSpec
from providers.errors import ConfigError
from tasks.evaluation.graders import GRADER_NAMES, build_grader


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Section):
    name: str = Field(description=f"one of: {', '.join(PROVIDERS)}")
    endpoint: str | None = Field(
        default=None, description="'emulator' runs a loopback emulator for an offline rehearsal; a URL points "
                                  "the provider at another endpoint; empty means the vendor's own")
    options: dict[str, Any] = Field(default_factory=dict, description="provider-only knobs, checked by the provider")

    @property
    def target(self) -> str:
        """Names where jobs live (provider plus endpoint): records of an emulator run never match a real one."""
        return f"{self.name}@{self.endpoint}" if self.endpoint else self.name

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {name!r}; allowed values: {', '.join(PROVIDERS)}")
        return name


class DataConfig(_Section):
    path: Path = Field(description="chat JSONL in the OpenAI shape, relative to the pipeline file")
    eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_salt: str = Field(default="loraflow", description="changing it reshuffles the split")
    min_train_examples: int = Field(default=10, ge=1)


class PollConfig(_Section):
    interval_s: float = Field(default=30.0, gt=0)
    max_wait_s: float = Field(default=24 * 3600.0, gt=0, description="cancel the job after this long")


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


class Pipeline(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="names the run directory")
    provider: ProviderConfig
    data: DataConfig
    training: TrainingSpec
    poll: PollConfig = Field(default_factory=PollConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    run_root: Path = Field(default=Path("runs"), description="where run directories go, relative to the "
                                                             "working directory")
    registry_url: str | None = Field(default=None, description="SQLAlchemy URL; default $LORAFLOW_HOME/registry.db")


def load_pipeline(path: Path) -> Pipeline:
    """Read, validate and resolve a pipeline file; every user mistake is a one-line ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such pipeline file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        pipeline = Pipeline.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=str(path)) from None
    data_path = (path.parent / pipeline.data.path).resolve()
    if not data_path.is_file():
        raise ConfigError(f"{path}: data.path: no such file: {data_path}")
    options_model = provider_class(pipeline.provider.name).Options
    try:
        options_model.model_validate(pipeline.provider.options)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=str(path), prefix="provider.options") from None
    for index, grader in enumerate(pipeline.eval.graders):
        try:
            build_grader(grader.name, **grader.params)
        except ConfigError as exc:
            raise ConfigError(f"{path}: eval.graders.{index}: {exc}") from None
    return pipeline.model_copy(update={"data": pipeline.data.model_copy(update={"path": data_path})})


def pipeline_schema() -> dict[str, Any]:
    return Pipeline.model_json_schema()
