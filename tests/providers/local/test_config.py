"""Axolotl-style options: validated with one clear line, merged with the portable TrainingSpec."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers import get_provider
from providers.base import TrainingSpec
from providers.errors import ConfigError
from providers.local.config import TrainConfig, train_config

SPEC = TrainingSpec(base_model="tiny:test", epochs=2, learning_rate=0.001, lora_r=16)


def resolved(options: dict, spec: TrainingSpec = SPEC) -> TrainConfig:
    provider = get_provider("local", {"work_dir": "/tmp/unused", **options})
    return train_config(spec, provider.options, base_model="base", train_path=Path("t.jsonl"), eval_path=None)


def test_axolotl_keys_and_spec_fields_merge_into_one_config() -> None:
    cfg = resolved({"lora_alpha": 32, "gradient_accumulation_steps": 4, "warmup_steps": 3,
                    "sequence_len": 512, "lora_target_modules": "all-linear"})
    assert (cfg.num_epochs, cfg.learning_rate, cfg.lora_r, cfg.lora_alpha) == (2, 0.001, 16, 32)
    assert (cfg.gradient_accumulation_steps, cfg.warmup_steps, cfg.sequence_len) == (4, 3, 512)
    assert cfg.lora_target_modules == "all-linear" and cfg.adapter == "lora"


@pytest.mark.parametrize(("options", "message"), [
    ({"adapter": "qlora"}, "adapter: qlora needs load_in_4bit: true"),
    ({"warmup_steps": 5, "warmup_ratio": 0.1}, "set warmup_steps or warmup_ratio, not both"),
    ({"lora_rank": 8}, "provider.options.lora_rank: unknown key"),
    ({"lr_scheduler": "exponential"}, "provider.options.lr_scheduler: got 'exponential'; allowed values"),
    ({"micro_batch_size": 0}, "provider.options.micro_batch_size"),
])
def test_bad_options_are_one_line_naming_the_key(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="local provider") as caught:
        get_provider("local", options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_knob_set_in_both_places_must_agree() -> None:
    with pytest.raises(ConfigError, match=r"training.epochs is 2 but provider.options.num_epochs is 5"):
        resolved({"num_epochs": 5})
    assert resolved({"num_epochs": 2}).num_epochs == 2


def test_check_spec_refuses_epochs_beyond_the_range_and_bad_tiny_names() -> None:
    provider = get_provider("local", {"work_dir": "/tmp/unused"})
    with pytest.raises(ConfigError, match="training.epochs: the local provider allows 1 to 50"):
        provider.check_spec(SPEC.model_copy(update={"epochs": 60}))
    with pytest.raises(ConfigError, match="tiny:NAME"):
        provider.check_spec(SPEC.model_copy(update={"base_model": "tiny:../x"}))
    assert provider.check_spec(SPEC) == []


def test_unsloth_without_unsloth_installed_is_a_clean_config_error() -> None:
    provider = get_provider("local", {"work_dir": "/tmp/unused", "backend": "unsloth"})
    with pytest.raises(ConfigError,
                       match="needs 'unsloth', which is not installed: install it in its own venv"):
        provider.check_spec(SPEC)
