"""The pipeline file (YAML) as pydantic models.

Every section forbids unknown keys; a mistake becomes one ConfigError line naming the key path and,
where there is a fixed set, the allowed values. Paths in the file are relative to the file itself.
`loraflow config schema` prints the JSON Schema of `Pipeline`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from providers import provider_class
from providers.base import TrainingSpec
from providers.errors import ConfigError
from tasks.configfile import path_problem, read_yaml, value_problems
from tasks.connection import ProviderConfig
from tasks.data.config import DataConfig
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.forms import choices
from tasks.lifecycle.monitor import MonitorConfig
from tasks.lifecycle.retrain import RetrainConfig
from tasks.recipes import apply_recipe, recipes
from tasks.rundir import RunDir
from tasks.runstore import RunPath, check_location, default_run_root, run_path
from tasks.training.costs import BudgetConfig
from tasks.training.polling import PollConfig

# a path or a URL; a Path given from Python is taken as its text (a URL would not survive as a Path)
RunRoot = Annotated[str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pipeline(_Section):
    # a validation error's text never repeats what was given: run_root may carry credentials it refuses
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100,
                      description="names the run directory (100 characters at most: a file name)")
    recipe: str | None = Field(default=None, description=f"a preset of proven defaults laid under this file "
                                                         f"(tasks/recipes.yaml): {', '.join(recipes())}",
                               json_schema_extra=choices(recipes()))
    provider: ProviderConfig
    data: DataConfig
    training: TrainingSpec
    poll: PollConfig = Field(default_factory=PollConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig, description="the quarterly retrain")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="the daily monitor")
    run_root: RunRoot = Field(default_factory=default_run_root,
                              description="where run directories go: a path relative to the working "
                                          "directory, or s3://bucket/prefix or gs://bucket/prefix (default: "
                                          "$LORAFLOW_RUN_ROOT, else runs)")
    registry_url: str | None = Field(default=None,
                                     description="SQLAlchemy URL; default $LORAFLOW_HOME/registry.db")

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, raw: Any) -> Any:
        """The recipe's preset laid under the given keys, wherever a Pipeline is built (file, form, API)."""
        name = raw.get("recipe") if isinstance(raw, dict) else None
        if not isinstance(name, str) or name not in recipes():
            return raw  # no recipe, or one `_known_recipe` reports under its key
        return apply_recipe(raw).raw

    @property
    def config_sha256(self) -> str:
        """Names the configuration in run directories and lineage."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    @property
    def endpoints(self) -> tuple[str | None, ...]:
        """Every endpoint the pipeline calls: the provider's and the judge's (`emulator` for a rehearsal)."""
        return self.provider.endpoint, self.eval.judge.endpoint if self.eval.judge else None

    @property
    def runs(self) -> RunPath:
        """This pipeline's run directories: `run_root/name`, local or in an object store."""
        return run_path(self.run_root) / self.name

    def new_run(self) -> RunDir:
        """A new run directory under `run_root/name`, named after the time and the configuration."""
        return RunDir.create(run_path(self.run_root), self.name, self.config_sha256)

    @field_validator("run_root")
    @classmethod
    def _storage_location(cls, root: str) -> str:
        try:
            check_location(root)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return root

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str | None) -> str | None:
        if name is not None and name not in recipes():
            raise ValueError(f"unknown recipe {name!r}; allowed values: {', '.join(recipes())}")
        return name


def load_pipeline(path: Path) -> Pipeline:
    """Read, validate and resolve a pipeline file; every user mistake is a one-line ConfigError."""
    raw = read_yaml(path, "pipeline file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        pipeline = Pipeline.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where=str(path)) from None
    if problems := value_problems(raw, pipeline.model_dump(mode="python")):
        raise ConfigError(f"{path}: {problems[0]}")
    data = pipeline.data.resolved(path.parent)
    for key, file in (("data.path", data.path), ("data.eval_path", data.eval_path)):
        if file is not None and (problem := path_problem(file)):
            raise ConfigError(f"{path}: {key}: {file} is {problem}" if problem != "no such file"
                              else f"{path}: {key}: no such file: {file}")
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
