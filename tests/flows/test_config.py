from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from flows.config import load_pipeline, pipeline_schema
from providers.errors import ConfigError
from tasks.connection import ProviderConfig
from tests.conftest import QUICKSTART

BASE = {
    "name": "demo",
    "provider": {"name": "fake"},
    "data": {"path": "data.jsonl"},
    "training": {"base_model": "base-1"},
}


def write(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "data.jsonl").write_text("{}\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def with_(section: str, **values: object) -> dict:
    config = json.loads(json.dumps(BASE))
    config.setdefault(section, {}).update(values)
    return config


def test_the_quickstart_pipeline_loads_with_paths_resolved() -> None:
    pipeline = load_pipeline(QUICKSTART / "pipeline.yaml")
    assert pipeline.data.path == (QUICKSTART / "data" / "bullets.jsonl").resolve()
    assert pipeline.eval.primary_key == "five_verb_bullets"
    assert pipeline.provider.target == "openai@emulator"
    assert pipeline.endpoints == ("emulator", None)


def test_a_judge_on_the_emulator_is_an_endpoint_the_cli_starts_one_for(tmp_path: Path) -> None:
    judge = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "endpoint": "emulator"}
    config = with_("eval", judge=judge)
    assert load_pipeline(write(tmp_path, config)).endpoints == (None, "emulator")


@pytest.mark.parametrize(("config", "message"), [
    (with_("training", epochs=0), "training.epochs: input should be greater than or equal to 1"),
    (with_("training", lora_rank=8), "training.lora_rank: unknown key"),
    (with_("provider", name="sagemaker"),
     ("provider.name: unknown provider 'sagemaker'; allowed values: azure_openai, bedrock, fake, local, "
      "openai, together, vertex")),
    (with_("data", eval_fraction=1.5), "data.eval_fraction: input should be less than 1"),
    ({k: v for k, v in BASE.items() if k != "training"}, "training: required key is missing"),
    (with_("provider", options={"stall": "maybe"}),
     "provider.options.stall: input should be a valid boolean"),
    (with_("eval", primary="judge"), "eval.primary: 'judge' is not one of the graders; allowed values"),
    (with_("eval", decoding={"temperature": "hot"}), "eval.decoding.temperature"),
    ({**BASE, "name": "Has Spaces"}, "name: string should match pattern"),
])
def test_bad_files_name_the_key_path(tmp_path: Path, config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_pipeline(write(tmp_path, config))
    assert message in str(raised.value).lower()
    assert "\n" not in str(raised.value)


def test_unknown_grader_and_bad_grader_params(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"eval.graders.0: grader 'bleu' is unknown; allowed graders"):
        load_pipeline(write(tmp_path, with_("eval", graders=[{"name": "bleu"}])))
    with pytest.raises(ConfigError, match=r"eval.graders.0: grader 'bullets'"):
        load_pipeline(write(tmp_path, with_("eval", graders=[{"name": "bullets",
                                                              "params": {"count": "five"}}])))


def test_missing_files_and_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: demo\nprovider: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: not valid YAML"):
        load_pipeline(bad_yaml)
    path = write(tmp_path, with_("data", path="missing.jsonl"))
    with pytest.raises(ConfigError, match=r"data.path: no such file: .*missing.jsonl"):
        load_pipeline(path)


def test_schema_describes_every_section() -> None:
    schema = pipeline_schema()
    assert set(schema["properties"]) >= {"name", "provider", "data", "training", "poll", "eval", "gate"}
    assert schema["additionalProperties"] is False


def test_the_run_form_offers_providers_recipes_and_graders_as_dropdowns() -> None:
    """Prefect renders a JSON Schema `enum` as a select; the validators still give the one-line errors."""
    from providers import PROVIDERS
    from tasks.evaluation.graders import GRADER_NAMES
    from tasks.recipes import recipes

    schema = pipeline_schema()
    defs = schema["$defs"]
    assert defs["ProviderConfig"]["properties"]["name"]["enum"] == sorted(PROVIDERS)
    assert defs["GraderConfig"]["properties"]["name"]["enum"] == sorted(GRADER_NAMES)
    assert {"type": "string", "enum": sorted(recipes())} in schema["properties"]["recipe"]["anyOf"]
    with pytest.raises(ValidationError, match="allowed values: azure_openai, bedrock, fake"):
        ProviderConfig(name="openia")
