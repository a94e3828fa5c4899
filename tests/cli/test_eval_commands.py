"""`loraflow eval` and `loraflow judge calibrate`, mounted the way cli/app.py mounts command groups."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cli import evaluate as eval_command
from cli import judge as judge_command
from emulator import EmulatorServer, Timeline
from providers.base import JobState, PreparedDataset
from providers.openai.adapter import OpenAIProvider
from tasks.evaluation.store import EvalStore
from tasks.registry import Registry
from tests.conftest import QUICKSTART
from tests.providers.contract import SPEC

root = typer.Typer()
root.add_typer(eval_command.app, name="eval")
root.add_typer(judge_command.app, name="judge")
runner = CliRunner()


def held_out(tmp_path: Path) -> str:
    """The last 100 quickstart examples as an items file (the data step is tested elsewhere)."""
    lines = (QUICKSTART / "data" / "bullets.jsonl").read_text().splitlines()[-100:]
    path = tmp_path / "held_out.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def target_suites(tmp_path: Path, *graders: str) -> list[dict]:
    return [{"name": "target", "items": held_out(tmp_path), "graders": [{"name": g} for g in graders]},
            {"name": "general", "role": "regression", "items": "builtin:general"}]


def pipeline_file(tmp_path: Path, **eval_section: object) -> Path:
    config = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text())
    config["data"]["path"] = str(QUICKSTART / "data" / "bullets.jsonl")
    config["run_root"] = str(tmp_path / "runs")
    config["eval"].update(eval_section)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tuned_model_on_the_emulator(home: Path) -> str:
    """Fine-tune on the emulator whose state the pipeline's `endpoint: emulator` will find."""
    fast = Timeline(validating_s=0.01, queued_s=0.01, steps=3, step_s=0.01)
    with EmulatorServer(state_dir=home / "emulator", timeline=fast) as server:
        provider = OpenAIProvider.from_options({}, base_url=server.base_url, api_key="k")
        data = PreparedDataset(train_path=QUICKSTART / "data" / "bullets.jsonl", sha256="d" * 64,
                               train_examples=640)
        job = provider.create_job(SPEC.model_copy(update={"suffix": "cli"}), provider.upload(data),
                                  idempotency_key="cli-test")
        for _ in range(200):
            status = provider.get_job(job)
            if status.state is JobState.SUCCEEDED:
                return status.model.model_id
            time.sleep(0.02)
    raise AssertionError("the emulator job did not finish")


def test_eval_alone_accepts_a_real_fine_tune_and_a_rerun_pays_nothing(tmp_path: Path,
                                                                      loraflow_home: Path) -> None:
    model = tuned_model_on_the_emulator(loraflow_home)
    pipeline = pipeline_file(tmp_path, suites=target_suites(tmp_path, "five_verb_bullets", "exact_match"))
    first = runner.invoke(root, ["eval", str(pipeline), "--candidate", model, "--json"])
    assert first.exit_code == 0, first.output
    decision = json.loads(first.stdout[first.stdout.index("{"):])
    assert decision["outcome"] == "accept" and decision["rules_version"] == "rules-v2"
    assert decision["primary"] == "target/five_verb_bullets"
    # the imitations cannot answer general items
    assert any("floor effect" in note for note in decision["notes"])
    runs = sorted((tmp_path / "runs" / "quickstart").iterdir())
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["evaluation"]["usage"]["calls"] == 2 * (100 + 150)
    assert (runs[0] / "eval" / "report.md").read_text().startswith(f"# Evaluation: `{model}`")
    second = runner.invoke(root, ["eval", str(pipeline), "--candidate", model, "--fail-unless-accepted"])
    assert second.exit_code == 0, second.output
    assert "ACCEPT" in second.stdout
    manifest = json.loads((sorted((tmp_path / "runs" / "quickstart").iterdir())[1]
                           / "manifest.json").read_text())
    assert manifest["evaluation"]["usage"]["calls"] == 0


def test_eval_reports_bad_input_in_one_line(tmp_path: Path, loraflow_home: Path) -> None:
    pipeline = pipeline_file(tmp_path, suites=[{"name": "x", "items": "missing.jsonl",
                                                "graders": [{"name": "match"}]}])
    result = runner.invoke(root, ["eval", str(pipeline), "--candidate", "m"])
    assert result.exit_code == 2
    assert "eval.suites.0.items: no such file" in result.output
    bad = pipeline_file(tmp_path, suites=[{"name": "t", "items": held_out(tmp_path),
                                           "graders": [{"name": "llm_judge", "params": {"rubric": "r"}}]}])
    result = runner.invoke(root, ["eval", str(bad), "--candidate", "m"])
    assert result.exit_code == 2 and "needs a judge model: configure eval.judge" in result.output


def test_an_unknown_candidate_is_an_invalid_run_not_a_rejection(tmp_path: Path, loraflow_home: Path) -> None:
    pipeline = pipeline_file(tmp_path, suites=target_suites(tmp_path, "five_verb_bullets")[:1])
    result = runner.invoke(root, ["eval", str(pipeline), "--candidate", "ft:unknown:model", "--json",
                                  "--fail-unless-accepted"])
    assert result.exit_code == 3
    decision = json.loads(result.stdout[result.stdout.index("{"):])
    assert decision["outcome"] == "invalid" and "infra errors" in decision["reason"]


class _JudgeHandler(BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible judge: passes answers that mention clouds."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        prompt = body["messages"][-1]["content"]
        answer = prompt.split("<answer>\n", 1)[1].split("\n</answer>", 1)[0]
        good = "cloud" in answer.lower()
        verdict = {"reasoning": "checked", "score": 5 if good else 1, "pass": good}
        reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": json.dumps(verdict)}}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def judge_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_judge_calibrate_stores_kappa_with_the_grader_version(tmp_path: Path, loraflow_home: Path,
                                                              judge_endpoint: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    pipeline = pipeline_file(
        tmp_path,
        suites=[*target_suites(tmp_path, "five_verb_bullets")[:1],
                {"name": "style", "role": "target", "items": held_out(tmp_path),
                 "graders": [{"name": "llm_judge", "params": {"rubric": "Mentions clouds?"}}]}],
        judge={"provider": "openai", "model": "gpt-4o-2024-08-06", "endpoint": judge_endpoint, "votes": 1})
    labels = tmp_path / "labels.jsonl"
    rows = [("Rain falls from clouds.", "pass"), ("Clouds make rain.", "pass"), ("It just happens.", "fail"),
            ("Ask someone else.", "fail"), ("Water from the cloud layer.", "fail")]  # one disagreement
    labels.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Why does it rain?"}],
                                          "output": out, "label": lab}) + "\n" for out, lab in rows))
    result = runner.invoke(root, ["judge", "calibrate", str(pipeline), str(labels), "--grader",
                                  "style/llm_judge"])
    assert result.exit_code == 0, result.output
    assert "0.615" in result.output and "80.0%" in result.output  # p_o 0.8, p_e 0.48
    store = EvalStore(Registry.open().engine)
    from tasks.evaluation.graders.judge import POINTWISE, SYSTEM, template_sha256
    sha = template_sha256(SYSTEM, POINTWISE, "Mentions clouds?", 5, 4)
    assert store.calibration("llm_judge", "1", "gpt-4o-2024-08-06", sha)["kappa"] == \
        pytest.approx(0.6154, abs=1e-4)
    strict = runner.invoke(root, ["judge", "calibrate", str(pipeline), str(labels), "--grader", "llm_judge",
                                  "--min-kappa", "0.7"])
    assert strict.exit_code == 3
    wrong = runner.invoke(root, ["judge", "calibrate", str(pipeline), str(labels), "--grader", "nope"])
    assert wrong.exit_code == 2 and "allowed values: style/llm_judge" in wrong.output
