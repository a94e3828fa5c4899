"""Model versions, aliases, promotion and rollback with their audit trail; the `loraflow models` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from providers.errors import ConfigError
from tasks.registry import Registry
from tasks.release.models import ModelRegistry


@pytest.fixture
def models(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Registry.open(f"sqlite:///{tmp_path / 'registry.db'}"))


def test_promote_and_rollback_move_aliases_and_record_who_and_why(models: ModelRegistry):
    for served in ("base", "ft-1", "ft-2"):
        models.register("bot", served, dataset_sha256="d" * 64, decision="accept")
    models.set_alias("bot", "champion", 1, weight=1.0, reason="launch", by="ana")
    models.set_alias("bot", "challenger", 2, weight=0.05, reason="canary", by="ana")
    experiment = models.start_experiment("bot", {"ramp": [0.05]})
    route = models.route("bot")
    assert (route.champion.version, route.challenger.version, route.weight) == (1, 2, 0.05)
    assert route.experiment_id == experiment.id and route.salt == experiment.salt
    assert models.promote("bot", reason="CS above zero", by="canary") == 2
    assert models.aliases("bot") == {"champion": (2, 1.0), "challenger": (2, 0.0)}
    models.set_alias("bot", "challenger", 3, weight=0.01, reason="next", by="ben")
    assert models.rollback("bot", "challenger", reason="breaker", by="canary") == 3
    assert models.aliases("bot")["challenger"] == (3, 0.0)
    assert models.rollback("bot", "champion", reason="complaints", by="oncall") == 1
    assert models.aliases("bot")["champion"] == (1, 1.0)
    trail = [(c.alias, c.from_version, c.to_version, c.changed_by, c.reason) for c in models.history("bot")]
    assert trail[2] == ("champion", 1, 2, "canary", "CS above zero")
    assert trail[-1] == ("champion", 2, 1, "oncall", "complaints")
    models.end_experiment(experiment.id, "shipped", "promoted")
    assert models.route("bot").experiment_id is None  # an ended experiment logs no more exposures


def test_registering_a_model_again_and_repeating_a_move_change_nothing(models: ModelRegistry):
    # what three concurrent runs of one pipeline do: each registers the same job's model and sets the
    # same alias
    first = models.register("bot", "ft-1", job_id="job-1")
    assert models.register("bot", "ft-1", job_id="job-1").version == first.version == 1
    for _ in range(3):
        models.set_alias("bot", "challenger", 1, weight=0.0, reason="offline gate", by="run")
    assert [(c.alias, c.to_version) for c in models.history("bot")] == [("challenger", 1)]
    assert models.register("bot", "ft-2").version == 2


def test_bad_moves_name_what_is_allowed(models: ModelRegistry):
    models.register("bot", "base")
    with pytest.raises(ConfigError, match="allowed values: champion, challenger"):
        models.set_alias("bot", "prod", 1, weight=1.0, reason="x")
    with pytest.raises(ConfigError, match="no version 9"):
        models.set_alias("bot", "champion", 9, weight=1.0, reason="x")
    models.set_alias("bot", "champion", 1, weight=1.0, reason="x")
    with pytest.raises(ConfigError, match="no earlier version"):
        models.rollback("bot", "champion", reason="x")
    with pytest.raises(ConfigError, match="bot@challenger is not set"):
        models.promote("bot", reason="x")
    assert models.route("nothing") is None


def test_cli_lists_shows_promotes_and_rolls_back(tmp_path: Path):
    url, run = f"sqlite:///{tmp_path / 'r.db'}", CliRunner().invoke
    for served in ("base", "ft"):
        assert run(app, ["models", "register", "bot", "--served-name", served,
                         "--registry", url]).exit_code == 0
    assert run(app, ["models", "set", "bot", "champion", "1", "--weight", "1", "--reason", "launch",
                     "--registry", url]).exit_code == 0
    challenger = run(app, ["models", "set", "bot", "challenger", "2", "--weight", "0.1", "--reason", "try",
                           "--registry", url], terminal_width=200)
    assert challenger.exit_code == 0 and "bot@challenger -> v2 at weight 10%" in challenger.output
    # the command says what traffic does: no experiment, so the weight does not apply yet
    assert "all of it to the champion v1" in challenger.output
    assert "loraflow models canary bot" in challenger.output
    ModelRegistry(Registry.open(url)).start_experiment("bot", {"ramp": [0.1]})
    again = run(app, ["models", "set", "bot", "challenger", "2", "--weight", "0.1", "--reason", "try",
                      "--registry", url], terminal_width=200)
    assert "10% to the challenger v2 and the rest to the champion v1" in again.output
    listed = run(app, ["models", "list", "--registry", url])
    assert "v2 (10%)" in listed.output
    promoted = run(app, ["promote", "bot", "--reason", "won", "--by", "ana", "--registry", url])
    assert promoted.exit_code == 0 and "bot@champion -> v2" in promoted.output
    assert run(app, ["rollback", "bot@champion", "--reason", "regret", "--registry", url]).exit_code == 0
    shown = run(app, ["models", "show", "bot", "--registry", url], terminal_width=200)
    assert "regret" in shown.output and "ana" in shown.output
    missing = run(app, ["promote", "ghost", "--reason", "x", "--registry", url])
    assert missing.exit_code == 2 and "ghost@challenger is not set" in missing.output


def test_an_accepted_candidate_becomes_challenger_at_weight_zero(tmp_path: Path):
    from providers.base import ModelRef
    from tasks.evaluation.decision import Decision
    from tasks.release.promotion import register_candidate_fn
    from tasks.rundir import RunDir

    registry = Registry.open(f"sqlite:///{tmp_path / 'r.db'}")
    run = RunDir.create(tmp_path / "runs", "bot", "c" * 64)
    base = ModelRef(provider="openai", model_id="gpt-base", base_model="gpt-base")
    tuned = ModelRef(provider="openai", model_id="ft:gpt-base:x", base_model="gpt-base", job_id="ftjob-1")
    rejected = Decision.model_construct(outcome="reject_worse", rules_version="v1")
    assert register_candidate_fn("bot", rejected, base, tuned, "d" * 64, run, registry) is None
    accepted = Decision.model_construct(outcome="accept", rules_version="v1")
    assert register_candidate_fn("bot", accepted, base, tuned, "d" * 64, run, registry) == 2
    models = ModelRegistry(registry)
    assert models.aliases("bot") == {"champion": (1, 1.0), "challenger": (2, 0.0)}
    v2 = models.versions("bot")[1]
    assert (v2.served_name, v2.job_id, v2.dataset_sha256, v2.decision) == \
        ("ft:gpt-base:x", "ftjob-1", "d" * 64, "accept")
    assert run.manifest()["registered"] == {"model": "bot", "version": 2, "alias": "challenger"}
