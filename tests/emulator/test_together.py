"""The emulator's Together API, driven through the real together SDK (no network beyond 127.0.0.1)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("together", reason="the together extra is not installed")

import together

from emulator import EmulatorServer, FaultRule, Timeline
from emulator.together.store import together_store
from providers.base import JobRef, JobState
from providers.together.adapter import TogetherOptions, TogetherProvider
from tests.emulator.test_emulator import scripted

LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
FAST = Timeline(validating_s=0.02, queued_s=0.02, steps=4, step_s=0.02, finishing_s=0.04)
EXAMPLES = [("How do I reset my router password?", "Hold the reset button for ten seconds."),
            ("What is the refund window for shoes?", "Shoes can be returned within 30 days.")]


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key="k", timeline=FAST) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: EmulatorServer) -> together.Together:
    return together.Together(base_url=server.base_url_for("together"), api_key="k", max_retries=0)


@pytest.fixture(autouse=True)
def _no_leftover_faults(server: EmulatorServer) -> Iterator[None]:
    yield
    server.state.faults.clear()


def training_file(tmp_path: Path, examples=EXAMPLES, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in examples), encoding="utf-8")
    return path


def create(client: together.Together, file_id: str, **knobs: object):
    arguments = {"training_file": file_id, "model": LLAMA, "lora": True, "train_on_inputs": "auto", **knobs}
    return client.fine_tuning.create(**arguments)


def wait_until(client: together.Together, job_id: str, *statuses: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while (job := client.fine_tuning.retrieve(job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"job stayed {job.status}, wanted {statuses}"
        time.sleep(0.01)
    return job


# -- files -----------------------------------------------------------------------------------------

def test_upload_takes_three_requests_and_a_second_upload_of_the_same_content_is_a_409(
        server: EmulatorServer, client: together.Together, tmp_path: Path) -> None:
    before = server.state.counters
    path = training_file(tmp_path, [("unique question one", "unique answer one")])

    first = client.files.upload(path, purpose="fine-tune", check=False)
    again = client.files.upload(path, purpose="fine-tune", check=False)

    assert first.id == again.id and first.processing_status == "COMPLETED"
    report = client.files.retrieve(first.id).validation_report  # upload() drops the report it was given
    assert report.valid and report.nlines == 1
    after = server.state.counters
    assert after["files_created"] - before["files_created"] == 1
    requests = {route: after["requests"].get(route, 0) - before["requests"].get(route, 0)
                for route in ("POST /together/v1/files", "PUT /together/uploads/{file_id}",
                              "POST /together/v1/files/{file_id}/preprocess")}
    assert requests == {"POST /together/v1/files": 2, "PUT /together/uploads/{file_id}": 1,
                        "POST /together/v1/files/{file_id}/preprocess": 1}
    assert client.files.content(first.id).read() == path.read_bytes()


def test_validation_takes_file_processing_time_and_names_a_bad_line(server: EmulatorServer,
                                                                    client: together.Together,
                                                                    tmp_path: Path) -> None:
    server.state.file_processing_s = 0.2
    try:
        good = client.files.upload(training_file(tmp_path, [("slow one", "slow answer")]),
                                   purpose="fine-tune")
        assert good.processing_status == "RUNNING"
        with pytest.raises(together.BadRequestError, match="has not been validated yet"):
            create(client, good.id)
    finally:
        server.state.file_processing_s = 0.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{not json\n', encoding="utf-8")
    refused = client.files.upload(bad, purpose="fine-tune", check=False)
    assert refused.processing_status == "INVALID_FORMAT"
    assert client.files.retrieve(refused.id).validation_report.error == "line 2: invalid JSON"


def test_the_presigned_url_needs_its_token_not_the_key(server: EmulatorServer,
                                                       client: together.Together) -> None:
    with httpx.Client() as plain:
        started = plain.post(f"{server.base_url_for('together')}/v1/files",
                             headers={"Authorization": "Bearer k"},
                             files={"purpose": (None, "fine-tune"), "file_name": (None, "x.jsonl"),
                                    "file_type": (None, "jsonl"), "checksum": (None, "abc")})
        assert started.status_code == 302
        location = started.headers["location"]
        assert plain.put(location.split("?")[0] + "?token=wrong", content=b"x").status_code == 403
        assert plain.put(location, content=b'{"messages": []}').status_code == 200


# -- jobs ------------------------------------------------------------------------------------------

def test_a_job_walks_every_running_status_and_reports_metrics_events_checkpoints(
        server: EmulatorServer, client: together.Together, tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    # every phase lasts long enough (0.15 s and more) to be seen by polling on a loaded machine
    with scripted(server, Timeline(validating_s=0.15, queued_s=0.15, steps=4, step_s=0.05, finishing_s=0.3)):
        job = create(client, file_id, lora_r=16, lora_alpha=32, lora_dropout=0.1, n_epochs=2, suffix="walk",
                     n_checkpoints=2)
    assert job.status == "pending" and job.output_name.startswith("loraflow-emulator/Meta-Llama-3.1-8B")
    seen = [job.status]
    while seen[-1] != "completed":
        current = client.fine_tuning.retrieve(job.id)
        if current.status != seen[-1]:
            seen.append(current.status)
        time.sleep(0.005)

    assert seen == ["pending", "queued", "running", "compressing", "uploading", "completed"]
    assert current.training_type.lora_r == 16 and current.x_model_output_name == job.output_name
    events = [e.type for e in client.fine_tuning.list_events(job.id).data]
    assert events[0] == "job_pending" and events[-1] == "job_complete" and "checkpoint_save" in events
    metrics = client.fine_tuning.list_metrics(job.id).metrics
    assert [m["global_step"] for m in metrics] == [1.0, 2.0, 3.0, 4.0]
    checkpoints = TogetherProvider(client).checkpoints(JobRef(provider="together", job_id=job.id))
    assert [(c["step"], c["kind"]) for c in checkpoints] == [(4, "Final"), (2, "Intermediate (step 2)")]


@pytest.mark.parametrize(("knobs", "message"), [
    ({"lora_r": 128}, "lora_r must be 1 to 64"),
    ({"lora_trainable_modules": "q_proj,w_gate"}, "Unknown LoRA target modules"),
    ({"n_epochs": 50}, "n_epochs must be 1 to 20"),
    ({"lora": False}, "Full training is not supported"),  # the SDK's own check, from the limits
    ({"model": "acme/unknown"}, "not available for fine-tuning"),
])
def test_create_refuses_what_the_limits_forbid(client: together.Together, tmp_path: Path, knobs: dict,
                                               message: str) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    with pytest.raises((together.APIStatusError, ValueError), match=message):
        create(client, file_id, **knobs)


def test_an_unknown_create_argument_is_refused(client: together.Together, tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    with pytest.raises(together.BadRequestError, match="Unrecognized request argument supplied: colour"):
        client.post("/v1/fine-tunes", body={"training_file": file_id, "model": LLAMA, "n_epochs": 1,
                                            "learning_rate": 1e-5, "colour": "blue"}, cast_to=dict)


def test_cancel_is_requested_then_done_and_an_ended_job_refuses(server: EmulatorServer,
                                                                 client: together.Together,
                                                                 tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    with scripted(server, Timeline(steps=3, step_s=30)):
        job = create(client, file_id)
    assert client.fine_tuning.cancel(job.id).status == "cancel_requested"
    assert client.fine_tuning.retrieve(job.id).status == "cancelled"
    with pytest.raises(together.BadRequestError, match="already ended"):
        client.fine_tuning.cancel(job.id)


def test_price_estimate_and_limits_come_from_the_catalog(client: together.Together, tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    estimate = client.fine_tuning.estimate_price(training_file=file_id, model=LLAMA, n_epochs=2)
    tokens = sum(len(q.split()) + len(a.split()) for q, a in EXAMPLES) * 2
    assert estimate.estimated_train_token_count == tokens
    assert estimate.estimated_total_price == pytest.approx(tokens * 0.48 / 1e6)
    assert client.fine_tuning.model_limits(model_name=LLAMA).lora_training.max_rank == 64


def test_the_adapter_downloads_and_the_tuned_model_answers_from_its_data(client: together.Together,
                                                                         tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    job = wait_until(client, create(client, file_id, lora_r=8).id, "completed")

    content = client.fine_tuning.content(ft_id=job.id, checkpoint="adapter").read()
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        assert json.loads(archive.extractfile("adapter_config.json").read())["r"] == 8
    reply = client.chat.completions.create(model=job.x_model_output_name,
                                           messages=[{"role": "user", "content": "Refund window for shoes?"}])
    assert reply.choices[0].message.content == EXAMPLES[1][1]
    with pytest.raises(together.NotFoundError):
        client.chat.completions.create(model="loraflow-emulator/never-trained",
                                       messages=[{"role": "user", "content": "hi"}])


def test_a_restarted_job_reappears_under_a_new_id_and_the_adapter_follows_it(server: EmulatorServer,
                                                                             client: together.Together,
                                                                             tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    provider = TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.01))
    before = server.state.counters
    restarting = Timeline(validating_s=0.01, queued_s=0.01, steps=4, step_s=0.02, restart_at_step=2)
    with scripted(server, restarting):
        original = create(client, file_id, suffix="restart-lf0123456789")
    ended = wait_until(client, original.id, "error")

    events = client.fine_tuning.list_events(original.id).data
    assert events[-1].type == "job_restarted"
    ref = JobRef(provider="together", job_id=original.id)
    deadline = time.monotonic() + 5
    while (status := provider.get_job(ref)).state is not JobState.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    assert status.job.job_id != original.id and ended.status == "error"
    assert status.model.model_id == original.output_name
    after = server.state.counters
    assert (after["jobs_created"] - before["jobs_created"],
            after["jobs_restarted"] - before["jobs_restarted"]) == (1, 1)


# -- faults and persistence ------------------------------------------------------------------------

def test_faults_and_counters_cover_the_together_routes(server: EmulatorServer,
                                                       client: together.Together) -> None:
    server.state.faults.add(FaultRule("GET /together/v1/fine-tunes", "server_error", status=502))
    with pytest.raises(together.InternalServerError):
        client.fine_tuning.list()
    assert server.state.counters["requests"]["GET /together/v1/fine-tunes"] >= 1
    assert client.fine_tuning.list().data is not None


def test_restart_on_the_same_state_dir_keeps_together_files_and_jobs(tmp_path: Path) -> None:
    path = training_file(tmp_path)
    with EmulatorServer(state_dir=tmp_path / "state", timeline=FAST) as first:
        client = together.Together(base_url=first.base_url_for("together"), api_key="k", max_retries=0)
        file_id = client.files.upload(path, purpose="fine-tune").id
        job_id = create(client, file_id).id
    with EmulatorServer(state_dir=tmp_path / "state") as second:
        client = together.Together(base_url=second.base_url_for("together"), api_key="k", max_retries=0)
        assert client.files.upload(path, purpose="fine-tune").id == file_id
        assert wait_until(client, job_id, "completed").x_model_output_name
        with pytest.raises(ValueError, match="does not speak .cohere."):
            second.base_url_for("cohere")


def test_cancelling_a_restarted_job_cancels_its_successor(server: EmulatorServer, client: together.Together,
                                                           tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    provider = TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.01))
    with scripted(server, Timeline(validating_s=0.01, queued_s=0.01, steps=4, step_s=0.3, restart_at_step=1)):
        original = create(client, file_id, suffix="cancel-lf9876543210")
    wait_until(client, original.id, "error")

    provider.cancel(JobRef(provider="together", job_id=original.id))

    successor = provider.get_job(JobRef(provider="together", job_id=original.id))
    assert successor.job.job_id != original.id and successor.state is JobState.CANCELLED


def test_a_job_restarted_twice_is_followed_to_the_last_one(server: EmulatorServer, client: together.Together,
                                                             tmp_path: Path) -> None:
    file_id = client.files.upload(training_file(tmp_path), purpose="fine-tune").id
    provider = TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.01))
    with scripted(server, Timeline(validating_s=0.01, queued_s=0.01, steps=4, step_s=0.3, restart_at_step=1)):
        original = create(client, file_id, suffix="twice-lf1111111111")
    first = provider.get_job(JobRef(provider="together", job_id=original.id))  # may still be the original
    wait_until(client, original.id, "error")
    successor = provider.get_job(JobRef(provider="together", job_id=original.id)).job.job_id
    # a second restart, of the successor, as Together might do: its own successor must be found, not
    # the original
    together_store(server.state).job(successor).timeline = Timeline(validating_s=0.01, queued_s=0.01, steps=4,
                                                                    step_s=0.01, restart_at_step=1)
    wait_until(client, successor, "error")
    last = provider.get_job(JobRef(provider="together", job_id=original.id))
    assert first.job.job_id in (original.id, successor)
    assert last.job.job_id not in (original.id, successor) and last.state is not JobState.FAILED
