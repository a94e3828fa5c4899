"""The local provider end to end on a tiny model: a trainer subprocess, its files, cancel, resume, crashes,
the adapter's outputs (reload, merge parity) and inference on the base and the tuned model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from providers.base import Decoding, JobRef, JobState, JobStatus, ModelRef, PreparedDataset, TrainingSpec
from providers.errors import PermanentProviderError
from providers.local import LocalProvider
from tests.providers.local.conftest import local_provider


def finish(provider: LocalProvider, job: JobRef, timeout_s: float = 120) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = provider.get_job(job)
        if status.state.is_terminal:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{job.job_id} did not end in {timeout_s} s: {provider.get_job(job)}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, quickstart_lines: list[str]):
    root = tmp_path_factory.mktemp("trained")
    (root / "train.jsonl").write_text("".join(quickstart_lines[:16]), encoding="utf-8")
    (root / "eval.jsonl").write_text("".join(quickstart_lines[16:20]), encoding="utf-8")
    provider = local_provider(root / "work", merge_lora=True, save_steps=2)
    data = provider.upload(PreparedDataset(train_path=root / "train.jsonl", eval_path=root / "eval.jsonl",
                                           sha256="e" * 64, train_examples=16, eval_examples=4))
    spec = TrainingSpec(base_model=str(tiny_base), epochs=2, seed=3)
    job = provider.create_job(spec, data, idempotency_key="trained")
    return provider, job, finish(provider, job)


def test_a_job_trains_an_adapter_and_reports_steps_and_metrics(trained) -> None:
    provider, job, status = trained
    assert status.state is JobState.SUCCEEDED, status.message
    assert status.step == status.total_steps == 8  # 16 examples / 4 per batch x 2 epochs
    assert status.model == ModelRef(provider="local", model_id=job.job_id, base_model=status.model.base_model,
                                    job_id=job.job_id)
    lines = [json.loads(line) for line in (provider.work_dir / "jobs" / job.job_id / "metrics.jsonl")
             .read_text().splitlines()]
    assert [row["step"] for row in lines] == list(range(1, 9))
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert status.metrics["eval_loss"] > 0 and status.trained_tokens == lines[-1]["tokens"]
    assert provider.find_job("trained") == job and provider.find_job("never") is None
    assert [row["train_loss"] for row in provider.loss_curve(job)] == [row["train_loss"] for row in lines]


def test_the_adapter_ships_with_its_tokenizer_and_a_merged_model_that_matches(trained) -> None:
    provider, job, status = trained
    adapter = provider.work_dir / "jobs" / job.job_id / "adapter"
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
            "chat_template.jinja"} <= names
    assert (adapter / "adapter_model.safetensors").stat().st_mode & 0o044 == 0o044
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    assert status.metrics["merge_max_logit_diff"] < 1e-4
    assert (provider.work_dir / "jobs" / job.job_id / "merged" / "model.safetensors").exists()


def test_the_trainer_checks_template_parity_and_says_what_evaluation_ran_against(trained) -> None:
    provider, job, status = trained
    parity = provider.template_parity(job)
    assert parity["ok"] and parity["rows_checked"] == 16 and parity["problems"] == []
    assert parity["base_template_matches"] and status.metrics["template_parity_ok"] == 1.0
    assert provider.evaluated_artifact(status.model)["artifact"] == "training_output"
    served = LocalProvider(provider.options, endpoint="http://127.0.0.1:8000/v1")
    assert served.evaluated_artifact(status.model)["artifact"] == "served"


def test_a_serving_template_that_differs_from_training_is_found(tiny_tokenizer, tmp_path: Path,
                                                                quickstart_lines: list[str]) -> None:
    import copy

    from providers.local.parity import describe, template_parity

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(quickstart_lines[:4]), encoding="utf-8")
    same = template_parity(tiny_tokenizer, tiny_tokenizer, tiny_tokenizer.chat_template, rows)
    assert same["ok"] and same["rows_checked"] == 4
    other = copy.deepcopy(tiny_tokenizer)
    other.chat_template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}" \
                          "{% if add_generation_prompt %}[assistant] {% endif %}"
    found = template_parity(tiny_tokenizer, other, tiny_tokenizer.chat_template, rows)
    assert not found["ok"] and found["prompt_differs"] == [1, 2, 3, 4] and not found["base_template_matches"]
    assert any("chat template mismatch" in p for p in describe(found))


def test_inference_serves_base_and_adapter_greedily_from_a_cache(trained, tiny_base: Path) -> None:
    provider, _, status = trained
    prompt = [{"role": "user", "content": "How do I plan a birthday party?"}]
    decoding = Decoding(max_tokens=12)
    base = ModelRef(provider="local", model_id=str(tiny_base), base_model=str(tiny_base))
    tuned = provider.infer(status.model, prompt, decoding)
    assert tuned == provider.infer(status.model, prompt, decoding).model_copy(
        update={"latency_ms": tuned.latency_ms})
    assert tuned.completion_tokens > 0 and tuned.model_id == status.model.model_id
    assert provider.infer(base, prompt, decoding).model_id == str(tiny_base)
    assert len(provider._generator._cache) == 2


def test_cancel_stops_the_trainer_and_a_rerun_resumes_from_its_checkpoint(tmp_path: Path, tiny_base: Path,
                                                                          dataset: PreparedDataset) -> None:
    provider = local_provider(tmp_path / "work", micro_batch_size=1, save_steps=3)
    spec = TrainingSpec(base_model=str(tiny_base), epochs=6, seed=1)
    data = provider.upload(dataset)
    job = provider.create_job(spec, data, idempotency_key="resume-me")
    first_checkpoint = provider.work_dir / "jobs" / job.job_id / "checkpoints" / "step-3" / "state.json"
    while not first_checkpoint.exists():
        assert not provider.get_job(job).state.is_terminal
        time.sleep(0.02)
    provider.cancel(job)
    cancelled = finish(provider, job)
    assert cancelled.state is JobState.CANCELLED and cancelled.step < cancelled.total_steps
    again = local_provider(tmp_path / "work", micro_batch_size=1, save_steps=3)  # a fresh process re-running
    assert again.create_job(spec, data, idempotency_key="resume-me") == job
    done = finish(again, job)
    assert done.state is JobState.SUCCEEDED and done.step == done.total_steps == 16 * 6
    log = (again.work_dir / "jobs" / job.job_id / "train.log").read_text()
    resumed_at = int(log.split("resuming from step-")[1].split()[0])
    steps = [json.loads(line)["step"] for line in (again.work_dir / "jobs" / job.job_id / "metrics.jsonl")
             .read_text().splitlines()]
    assert resumed_at >= 3 and steps[steps.index(resumed_at, 1) + 1] == resumed_at + 1
    again.cancel(job)  # a no-op once ended
    assert again.get_job(job).state is JobState.SUCCEEDED


def test_an_error_in_the_trainer_is_a_failed_job_with_its_log_tail(tmp_path: Path,
                                                                  dataset: PreparedDataset) -> None:
    provider = local_provider(tmp_path / "work")
    spec = TrainingSpec(base_model=str(tmp_path / "no-such-model"), epochs=1)
    status = finish(provider, provider.create_job(spec, provider.upload(dataset), idempotency_key="broken"))
    assert status.state is JobState.FAILED
    message, _, tail = status.message.partition("--- last lines of")
    assert "no-such-model" in message and "FileNotFoundError" in tail and "Traceback" in tail


def test_a_trainer_that_dies_without_a_word_is_a_failed_job(tmp_path: Path, tiny_base: Path,
                                                            dataset: PreparedDataset) -> None:
    provider = local_provider(tmp_path / "work", python="/bin/false")  # exits at once, like an OOM kill
    spec = TrainingSpec(base_model=str(tiny_base), epochs=1)
    status = finish(provider, provider.create_job(spec, provider.upload(dataset), idempotency_key="killed"))
    assert status.state is JobState.FAILED and "exited without a final status" in status.message
    with pytest.raises(PermanentProviderError):
        provider.get_job(JobRef(provider="local", job_id="local-unknown"))


def test_serve_model_plans_vllm_with_the_adapter_and_writes_a_compose_file(trained) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from providers.local.serve import ServePlan

    provider, job, _ = trained
    job_dir = provider.work_dir / "jobs" / job.job_id
    result = CliRunner().invoke(app, ["serve-model", str(job_dir), "--dry-run", "--name", "bullets"])
    assert result.exit_code == 0, result.output
    served = json.loads((job_dir / "serve.json").read_text())
    assert served["command"][:3] == ["vllm", "serve",
                                     json.loads((job_dir / "job.json").read_text())["base_path"]]
    assert f"bullets={job_dir / 'adapter'}" in served["command"] and \
        "--max-lora-rank" not in served["command"]
    assert "/adapters/bullets:ro" in (job_dir / "compose.yaml").read_text()
    wide = ServePlan(name="x", base="b", adapter=job_dir / "adapter", rank=24, port=8000)
    assert wide.command()[-2:] == ["--max-lora-rank", "32"]
    refused = CliRunner().invoke(app, ["serve-model", str(provider.work_dir)])
    assert refused.exit_code == 2 and "neither a local job directory" in refused.output


def test_with_an_endpoint_inference_goes_to_the_openai_compatible_server(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict] = []

    class VLLM(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append({"path": self.path,
                         **json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            body = json.dumps({"choices": [{"message": {"content": "- Pick a date"},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 7, "completion_tokens": 4}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), VLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = LocalProvider.from_options({"work_dir": str(tmp_path)},
                                              base_url=f"http://127.0.0.1:{server.server_port}/v1")
        tuned = ModelRef(provider="local", model_id="local-abc", base_model="tiny:x", job_id="local-abc")
        answer = provider.infer(tuned, [{"role": "user", "content": "Plan a party."}], Decoding(max_tokens=9))
    finally:
        server.shutdown()
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("- Pick a date", 7, 4)
    assert seen[0]["path"] == "/v1/chat/completions" and seen[0]["model"] == "local-abc"
    assert seen[0]["max_tokens"] == 9 and seen[0]["temperature"] == 0.0
