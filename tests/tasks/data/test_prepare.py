"""The data step end to end: what it writes, what it refuses, and that a failure leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.errors import ConfigError, DataError
from tasks.data.config import DataConfig
from tasks.data.stage import check_file, prepare
from tasks.data.target import DataTarget
from tasks.rundir import RunDir, sha256_file
from tests.conftest import QUICKSTART, write_jsonl
from tests.tasks.data.helpers import OPENAI, diagnostics_of, distinct, line

TWO_USERS = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                     {"role": "assistant", "content": "c"}]})


def run_dir(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "runs", "p", "c" * 64)


def test_the_quickstart_prepares_cleanly_with_a_helpful_volume_note(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    config = DataConfig(path=QUICKSTART / "data" / "bullets.jsonl", eval_fraction=0.2)
    dataset = prepare(config, run, OPENAI)
    report = json.loads((run.root / "report.json").read_text())
    assert report["status"] == "ready" and report["diagnostics"]["errors"] == 0
    assert (dataset.train_examples, dataset.eval_examples) == \
        (report["counts"]["train"], report["counts"]["eval"])
    assert dataset.train_examples + dataset.eval_examples == 640
    assert dataset.train_tokens == report["tokens"]["train"]
    assert report["tokens"]["billable"] == 3 * dataset.train_tokens
    assert [c["message"].split(":")[1].strip() for c in report["checks"]] == [
        ("enough for a narrow task such as a fixed format or tone; a moderate task wants 1,000-5,000, "
         "general behaviour 5,000+")]
    markdown = (run.root / "report.md").read_text()
    assert "**ready**" in markdown and "o200k_base" in markdown and "billable" in markdown
    assert len(markdown.splitlines()) < 40


def test_prepare_writes_split_report_and_manifest_and_is_reproducible(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", distinct(100))
    run = run_dir(tmp_path)
    dataset = prepare(DataConfig(path=source), run, OPENAI)
    assert dataset.train_examples + dataset.eval_examples == 100
    assert len(dataset.train_path.read_text().splitlines()) == dataset.train_examples
    manifest = run.manifest()["data"]
    assert manifest["train_sha256"] == sha256_file(dataset.train_path)
    assert manifest["input_sha256"] == sha256_file(source)
    assert manifest["tokenizer"] == "o200k_base" and manifest["scrub"]["policy"] == "scrub"
    assert sorted(p.name for p in run.data_dir.iterdir()) == ["eval.jsonl", "train.jsonl"]
    again = prepare(DataConfig(path=source), run_dir(tmp_path), OPENAI)
    assert again.sha256 == dataset.sha256


def test_errors_stop_the_run_leave_no_prepared_file_and_still_write_the_report(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*distinct(20), "{bad", "[]"])
    run = run_dir(tmp_path)
    with pytest.raises(DataError) as raised:
        prepare(DataConfig(path=source), run, OPENAI)
    assert [(p.line, p.code) for p in raised.value.problems] == [(21, "invalid_json"), (22, "not_object")]
    assert str(raised.value).startswith(f"{source}:21: invalid_json:")
    assert list(run.data_dir.iterdir()) == []
    assert json.loads((run.root / "report.json").read_text())["status"] == "blocked"


def test_severity_depends_on_the_target_and_can_be_overridden(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*distinct(20), TWO_USERS])
    assert (21, "role_order", "warning") in diagnostics_of(source)
    bedrock = DataTarget("bedrock", "amazon.nova-lite-v1:0", 2)
    assert (21, "role_order", "error") in diagnostics_of(source, bedrock)
    assert (21, "role_order", "warning") in diagnostics_of(source, bedrock,
                                                            severity={"role_order": "warning"})
    with pytest.raises(ValueError, match="unknown diagnostic code 'role'; allowed values: bad_metadata"):
        DataConfig(path=source, severity={"role": "off"})


def test_examples_over_the_context_limit_are_errors(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*distinct(20), line("word " * 70_000)])
    report = check_file(DataConfig(path=source), OPENAI)
    assert report["tokens"]["over_limit"] == 1
    assert {"line": 21, "code": "too_long", "severity": "error",
            "message": "70,015 tokens; gpt-4o-mini-2024-07-18 trains on at most 65,536 tokens per "
                       "example"} in report["diagnostics"]["kept"]


def test_metadata_stratifies_the_split_and_never_reaches_the_prepared_files(tmp_path: Path) -> None:
    lines = [json.dumps({**json.loads(raw), "metadata": {"topic": "rare" if i < 10 else "common"}})
             for i, raw in enumerate(distinct(100))]
    run = run_dir(tmp_path)
    config = DataConfig(path=write_jsonl(tmp_path / "in.jsonl", lines), stratify_by="topic",
                        eval_fraction=0.1)
    dataset = prepare(config, run, OPENAI)
    report = json.loads((run.root / "report.json").read_text())
    assert report["split"]["strata"] == {"rare": {"train": 9, "eval": 1}, "common": {"train": 81, "eval": 9}}
    assert "metadata" not in dataset.train_path.read_text() + dataset.eval_path.read_text()


def test_too_few_training_examples_and_unknown_model_notes(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", distinct(12))
    with pytest.raises(ConfigError, match="min_train_examples requires at least 50"):
        prepare(DataConfig(path=source, min_train_examples=50), run_dir(tmp_path), OPENAI)
    report = check_file(DataConfig(path=source), DataTarget("vertex", "gemini-9-ultra", 1))
    assert {(c["code"], c["severity"]) for c in report["checks"]} >= {("tokenizer_estimate", "warning"),
                                                                     ("context_unknown", "warning")}
    assert report["target"]["tokenizer"] == "chars/4"



def test_an_example_over_the_limit_is_never_written_even_when_downgraded(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*distinct(30), line("word " * 70_000)])
    dataset = prepare(DataConfig(path=source, severity={"too_long": "warning"}), run_dir(tmp_path), OPENAI)
    assert dataset.train_examples + dataset.eval_examples == 30
    assert "word word" not in dataset.train_path.read_text() + dataset.eval_path.read_text()
