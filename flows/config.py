"""The pipeline file (YAML) as pydantic models.

Every section forbids unknown keys; a mistake becomes one ConfigError line naming the key path and,
where there is a fixed set, the allowed values. Paths in the file are relative to the file itself.
`loraflow config schema` prints the JSON Schema of `Pipeline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from providers import PROVIDERS, provider_class
from providers.base import TrainingSpec
from providers.errors import ConfigError
from tasks.training.costs import BudgetConfig
from tasks.data.config import DataConfig
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.lifecycle.monitor import MonitorConfig
from tasks.training.polling import PollConfig
from tasks.recipes import apply_recipe, recipes
from tasks.lifecycle.retrain import RetrainConfig
from tasks.secrets import SECRET_HELP


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Section):
    name: str = Field(description=f"one of: {', '.join(PROVIDERS)}")
    endpoint: str | None = Field(
        default=None, description="'emulator' runs a loopback emulator for an offline rehearsal; a URL points "
                                  "the provider at another endpoint; empty means the vendor's own")
    options: dict[str, Any] = Field(default_factory=dict, description="provider-only knobs, checked by the provider")
    api_key_secret: str | None = Field(default=None, description=SECRET_HELP)

    @property
    def target(self) -> str:
        """Names where jobs live (provider plus endpoint): records of an emulator run never match a real one."""
        return f"{self.name}@{self.endpoint}" if self.endpoint else self.name

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {name!r}; allowed values: {', '.join(sorted(PROVIDERS))}")
        return name


class Pipeline(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="names the run directory")
    recipe: str | None = Field(default=None, description=f"a preset of proven defaults laid under this file "
                                                         f"(tasks/recipes.yaml): {', '.join(recipes())}")
    provider: ProviderConfig
    data: DataConfig
    training: TrainingSpec
    poll: PollConfig = Field(default_factory=PollConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig, description="the quarterly retrain")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="the daily monitor")
    run_root: Path = Field(default=Path("runs"), description="where run directories go, relative to the "
                                                             "working directory")
    registry_url: str | None = Field(default=None, description="SQLAlchemy URL; default $LORAFLOW_HOME/registry.db")

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, raw: Any) -> Any:
        """The recipe's preset laid under the given keys, wherever a Pipeline is built (file, UI form, API)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("recipe"), str) or raw["recipe"] not in recipes():
            return raw  # no recipe, or one `_known_recipe` reports under its key
        return apply_recipe(raw).raw

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str | None) -> str | None:
        if name is not None and name not in recipes():
            raise ValueError(f"unknown recipe {name!r}; allowed values: {', '.join(recipes())}")
        return name


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
    data = pipeline.data.resolved(path.parent)
    for key, file in (("data.path", data.path), ("data.eval_path", data.eval_path)):
        if file is not None and not file.is_file():
            raise ConfigError(f"{path}: {key}: no such file: {file}")
    options_model = provider_class(pipeline.provider.name).Options
    try:
        options_model.model_validate(pipeline.provider.options)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=str(path), prefix="provider.options") from None
    try:
        eval_config = pipeline.eval.with_paths_resolved(path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return pipeline.model_copy(update={"data": data, "eval": eval_config})


def pipeline_schema() -> dict[str, Any]:
    return Pipeline.model_json_schema()
