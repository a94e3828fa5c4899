"""`loraflow doctor`: readiness findings, each with what to do."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from cli.app import app
from cli.readiness import Readiness, diagnose
from flows.config import load_pipeline
from tasks.evaluation.config import EvalConfig

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


def readiness(name: str, **changes: object) -> Readiness:
    return replace(Readiness.of(load_pipeline(RECIPES / name / "pipeline.yaml")), **changes)


def by_check(findings: list) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for f in findings:
        out.setdefault(f.check, []).append((f.level, f.message))
    return out


def test_an_example_is_ready_apart_from_its_tiny_data() -> None:
    found = by_check(diagnose(readiness("dsl"), environ={}, today=date(2026, 11, 30)))
    assert found["credentials"][0][0] == "ok" and found["budget"][0][0] == "ok"
    level, message = found["data"][0]
    assert level == "warn" and "the dsl recipe usually needs 5,000+" in message
    assert not any(level == "fail" for f in found.values() for level, _ in f)


def test_missing_key_retiring_model_no_suites_and_no_budget_are_each_reported_with_a_fix() -> None:
    r = readiness("format-strict", endpoint=None, eval=EvalConfig(),
                  budget=load_pipeline(RECIPES / "dsl" / "pipeline.yaml").budget.model_copy(
                      update={"max_usd": None}))
    findings = diagnose(r, environ={}, today=date(2026, 12, 1))
    found = by_check(findings)
    assert found["credentials"] == [("fail", "OPENAI_API_KEY is not set")]
    assert ("warn", ("gpt-4.1-mini-2025-04-14 takes no new fine-tuning jobs after 2027-01-06, "
                     "within 90 days (not confirmed on the vendor's page: see the catalog's evidence)")
            ) in found["base model"]
    retiring = next(f for f in findings if f.message.startswith("gpt-4.1-mini-2025-04-14 retires 2027-01-14"))
    assert "the vendor recommends gpt-6-luna" in retiring.fix and "loraflow migrate" in retiring.fix
    assert found["evaluation"][0][0] == "fail" and found["budget"][0][0] == "warn"
    assert all(f.fix for f in findings if f.level != "ok")
    ok = by_check(diagnose(r, environ={"OPENAI_API_KEY": "sk-x"}, today=date(2027, 2, 1)))
    assert ok["credentials"][0][0] == "ok" and ok["base model"][0][0] == "fail"


def test_doctor_names_the_replacement_for_a_retired_base() -> None:
    r = readiness("dsl", provider="vertex", base_model="gemini-2.5-flash", endpoint="emulator")
    failed = [f for f in diagnose(r, environ={}, today=date(2026, 12, 4)) if f.check == "base model"]
    assert failed[0].level == "fail" and "retires 2026-10-16 (passed)" in failed[0].message
    assert "gemini-3.5-flash-lite or gemini-3.1-flash-lite" in failed[0].fix


def test_the_safety_recipe_without_a_safety_suite_fails() -> None:
    r = readiness("safety", eval=EvalConfig(graders=[{"name": "refusal", "params": {"expect": "refuse"}}]))
    messages = [f.message for f in diagnose(r, environ={}) if f.level == "fail"]
    assert any("needs a safety suite" in m for m in messages)


def test_the_command_prints_the_findings_and_exits_by_the_worst() -> None:
    result = CliRunner().invoke(app, ["doctor", str(RECIPES / "safety" / "pipeline.yaml")])
    assert result.exit_code == 0, result.output
    assert "0 to fix" in result.output and "recipe safety" in result.output
    missing = CliRunner().invoke(app, ["doctor", str(RECIPES / "nope.yaml")])
    assert missing.exit_code == 2 and "no such pipeline file" in missing.output
