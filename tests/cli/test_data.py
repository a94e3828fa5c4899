"""`loraflow data check` and `loraflow data prepare`, driven through the Typer app object."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.data import app
from tests.conftest import QUICKSTART, write_jsonl
from tests.tasks.data.helpers import distinct, line

runner = CliRunner()
TWO_USERS = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                     {"role": "assistant", "content": "c"}]})


def test_check_json_prints_one_object_per_diagnostic_then_a_summary(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "d.jsonl", [*distinct(12), "{bad", TWO_USERS])
    result = runner.invoke(app, ["check", str(source), "--provider", "bedrock", "--model",
                                 "amazon.nova-lite-v1:0", "--json"])
    assert result.exit_code == 2
    objects = [json.loads(raw) for raw in result.stdout.splitlines()]
    assert objects[0] == {"line": 13, "code": "invalid_json", "severity": "error",
                          "message": "Expecting property name enclosed in double quotes at column 2"}
    assert objects[1]["line"] == 14 and objects[1]["code"] == "role_order" and \
        objects[1]["severity"] == "error"
    assert all(set(o) == {"line", "code", "severity", "message"} for o in objects[:-1])
    summary = objects[-1]["summary"]
    assert (summary["status"], summary["errors"], summary["target"]["format"]) == \
        ("blocked", 2, "bedrock-converse")


def test_check_passes_clean_data_and_prints_the_report(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "d.jsonl",
                         [*distinct(30), line("mail me at ann@example.com", "- Will do")])
    result = runner.invoke(app, ["check", str(source), "--model", "gpt-4o-mini-2024-07-18"])
    assert result.exit_code == 0, result.output
    assert "**ready**" in result.stdout
    assert "EMAIL 1 (lines 31)" in result.stdout and "ann@example.com" not in result.stdout


def test_check_mistakes_are_one_line_with_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    source = write_jsonl(tmp_path / "d.jsonl", distinct(3))
    unknown = runner.invoke(app, ["check", str(source), "--provider", "acme"])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().splitlines() == [
        ("error: no training format for provider 'acme'; allowed values: azure_openai, bedrock, fake, local, "
         "openai, together, vertex")]


def test_prepare_runs_the_data_step_of_a_pipeline(tmp_path: Path) -> None:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    config["run_root"] = str(tmp_path / "runs")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["prepare", str(pipeline)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("prepared ")
    reports = list((tmp_path / "runs" / "quickstart").glob("*/report.md"))
    assert len(reports) == 1 and "**ready**" in reports[0].read_text()


def test_prepare_reports_bad_data_in_one_line(tmp_path: Path) -> None:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config["data"]["path"] = str(write_jsonl(tmp_path / "bad.jsonl", [*distinct(20), "{bad"]))
    config["run_root"] = str(tmp_path / "runs")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["prepare", str(pipeline)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert ":21: invalid_json:" in result.stderr and "report.md" in result.stderr


def test_check_reads_a_gzip_file_named_jsonl_and_says_so(tmp_path: Path) -> None:
    """A gzip file with a .jsonl name used to give one encoding error per line and never say gzip."""
    import gzip

    source = tmp_path / "d.jsonl"
    source.write_bytes(gzip.compress(("\n".join(distinct(30)) + "\n").encode()))
    result = runner.invoke(app, ["check", str(source), "--model", "gpt-4o-mini-2024-07-18"])
    assert result.exit_code == 0, result.output
    assert "d.jsonl is gzip-compressed: read as it is" in result.output
    assert "invalid_utf8" not in result.output
