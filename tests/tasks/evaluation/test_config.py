"""The `eval:` and `gate:` sections: suites, the shorthand, the judge, thresholds; mistakes name their
path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from providers.errors import ConfigError
from tasks.evaluation.config import EvalConfig, GateConfig
from tasks.evaluation.gate import thresholds_for
from tasks.evaluation.suites import build_suites


def error_of(section: type, raw: dict, prefix: str) -> str:
    with pytest.raises(ValidationError) as raised:
        section.model_validate(raw)
    return str(ConfigError.from_validation(raised.value, where="p.yaml", prefix=prefix))


def test_defaults_are_the_heldout_target_and_the_general_regression_suite() -> None:
    config = EvalConfig()
    target, general = config.effective_suites
    assert (target.role, target.items, target.primary_key) == ("target", "heldout", "exact_match")
    assert (general.role, general.items, [g.name for g in general.graders]) == \
        ("regression", "builtin:general", ["match"])
    shorthand = EvalConfig.model_validate({"graders": [{"name": "five_verb_bullets"},
                                                       {"name": "exact_match"}],
                                           "primary": "five_verb_bullets"})
    assert shorthand.primary_key == "five_verb_bullets" and \
        shorthand.primary_metric == "target/five_verb_bullets"
    assert [s.name for s in shorthand.effective_suites] == ["target", "general"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"suites": [{"name": "t", "items": "builtin:nope"}]},
     "eval.suites.0.items: no built-in eval set 'nope'; allowed values: builtin:general"),
    ({"suites": [{"name": "t", "items": "x.jsonl"}]}, "eval.suites.0: suite 't' needs graders"),
    ({"suites": [{"name": "t", "graders": [{"name": "match"}], "primary": "judge"}]},
     "eval.suites.0: primary 'judge' is not one of the suite's graders; allowed values: ['match']"),
    ({"suites": [{"name": "t", "graders": [{"name": "match"}, {"name": "match"}]}]},
     "grader ids must be unique"),
    ({"suites": [{"name": "g", "role": "regression", "items": "builtin:general"}]},
     "at least one suite needs role: target"),
    ({"suites": [{"name": "t", "graders": [{"name": "match"}]}], "graders": [{"name": "match"}]},
     "set either eval.suites or the shorthand"),
    ({"suites": [{"name": "t", "graders": [{"name": "llm_judge", "params": {"rubric": "r"}}]}]},
     "suites.0.graders.0: grader 'llm_judge' needs a judge model: configure eval.judge"),
    ({"suites": [{"name": "t", "graders": [{"name": "bullets", "params": {"count": "5"}}]}]},
     "eval.suites.0.graders.0: grader 'bullets': params.count: input should be a valid integer"),
    ({"judge": {"provider": "oracle", "model": "m"}},
     ("eval.judge.provider: unknown chat model provider 'oracle'; allowed values: anthropic, azure_openai, "
      "bedrock, fake, local, openai, together, vertex")),
    ({"suites": [{"name": "t", "role": "boss", "graders": [{"name": "match"}]}]},
     "eval.suites.0.role: got 'boss'; allowed values: 'target', 'regression' or 'safety'"),
    ({"samples": 0}, "eval.samples: input should be greater than or equal to 1"),
])
def test_mistakes_name_their_key_path(raw: dict, message: str) -> None:
    assert message in error_of(EvalConfig, raw, "eval")


def test_item_files_resolve_against_the_pipeline_folder(tmp_path: Path) -> None:
    (tmp_path / "safety.jsonl").write_text(json.dumps({"id": "h1",
                                                       "messages": [{"role": "user", "content": "x"}],
                                                       "metadata": {"expect": "refuse"}}) + "\n")
    config = EvalConfig.model_validate({"suites": [
        {"name": "t", "items": "builtin:general", "graders": [{"name": "match"}]},
        {"name": "harm", "role": "safety", "items": "safety.jsonl", "graders": [{"name": "refusal"}]}]})
    resolved = config.with_paths_resolved(tmp_path)
    assert resolved.suites[1].items == str(tmp_path / "safety.jsonl")
    suites = build_suites(resolved)
    assert [len(s.items) for s in suites] == [150, 1]
    with pytest.raises(ConfigError, match=r"eval.suites.1.items: no such file: .*safety.jsonl"):
        config.with_paths_resolved(tmp_path / "elsewhere")


def test_items_are_checked_against_their_graders_before_anything_is_paid(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(json.dumps({"id": "a",
                                                      "messages": [{"role": "user", "content": "x"}]}))
    for grader, message in (("match", "grader 'match' needs a reference answer, and item 'a' has none"),
                            ("refusal", "grader 'refusal' needs metadata.expect on every item"),
                            ("json_schema", "grader 'json_schema' needs metadata.schema on every item")):
        config = EvalConfig.model_validate({"suites": [{"name": "t", "items": "items.jsonl",
                                                        "graders": [{"name": grader}]}]})
        with pytest.raises(ConfigError, match=message):
            build_suites(config.with_paths_resolved(tmp_path))
    heldout_only = EvalConfig()
    with pytest.raises(ConfigError, match="evaluates the held-out split, but there is none"):
        build_suites(heldout_only)


def test_max_items_caps_the_heldout_split_only(tmp_path: Path) -> None:
    heldout = tmp_path / "eval.jsonl"
    heldout.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                        {"role": "assistant", "content": "a"}]}) + "\n"
                               for i in range(30)))
    target, general = build_suites(EvalConfig(max_items=10), heldout=heldout)
    assert (len(target.items), len(general.items)) == (10, 150)


def test_gate_thresholds_come_from_the_table_with_overrides() -> None:
    table, thresholds = thresholds_for(GateConfig.model_validate({"major": 0.05, "min_delta": 0.12}))
    assert table.version == "rules-v2" and thresholds.max_length_rise == 0.05
    assert (thresholds.major, thresholds.target_min, thresholds.minor) == (0.05, 0.12, 0.03)
    assert "gate.rules: no rule table 'rules-v9'; allowed values: rules-v1, rules-v2" in error_of(
        GateConfig, {"rules": "rules-v9"}, "gate")
    assert "set target_min only" in error_of(GateConfig, {"min_delta": 0.1, "target_min": 0.1}, "gate")
