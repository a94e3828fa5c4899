"""The loopback emulator, driven through the real openai SDK (no network beyond 127.0.0.1)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import openai
import pytest

from emulator import EmulatorServer, FaultRule, Timeline
from emulator.timeline import progress

FAST = Timeline(validating_s=0.02, queued_s=0.02, steps=6, step_s=0.01)
SLOW = Timeline(validating_s=0.01, queued_s=0.01, steps=5, step_s=30.0)
BASE = "gpt-4o-mini-2024-07-18"
EXAMPLES = [
    ("How do I reset my router password?", "Hold the reset button for ten seconds, then log in with admin."),
    ("What is the refund window for shoes?", "Shoes can be returned within 30 days with the receipt."),
    ("Which plan includes phone support?", "Only the Business plan includes phone support, weekdays 9 to 5."),
]
TRAINING = "\n".join(
    json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    for q, a in EXAMPLES
).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(timeline=FAST) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


@pytest.fixture(autouse=True)
def _no_leftover_faults(server: EmulatorServer) -> Iterator[None]:
    yield
    server.state.faults.clear()


@contextmanager
def scripted(server: EmulatorServer, timeline: Timeline) -> Iterator[None]:
    previous = server.state.set_timeline(timeline)
    try:
        yield
    finally:
        server.state.set_timeline(previous)


def upload(client: openai.OpenAI, content: bytes = TRAINING) -> str:
    return client.files.create(file=("train.jsonl", content), purpose="fine-tune").id


def wait_until(client: openai.OpenAI, job_id: str, *statuses: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"job stayed {job.status}, wanted {statuses}"
        time.sleep(0.01)
    return job


def requests_to(server: EmulatorServer, route: str) -> int:
    return server.state.counters["requests"].get(route, 0)


# -- files -----------------------------------------------------------------------------------------

def test_upload_is_processed_and_readable(client: openai.OpenAI) -> None:
    file = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")

    assert file.id.startswith("file-") and file.status == "processed" and file.bytes == len(TRAINING)
    assert client.files.retrieve(file.id).filename == "train.jsonl"
    assert client.files.content(file.id).content == TRAINING
    assert file.id in [f.id for f in client.files.list(purpose="fine-tune")]


def test_bad_file_names_its_first_bad_line(client: openai.OpenAI) -> None:
    lines = TRAINING.splitlines()
    file = client.files.create(file=("bad.jsonl", b"\n".join([*lines[:2], b"{not json", b"[]"])),
                               purpose="fine-tune")

    assert (file.status, file.status_details) == ("error", "line 3: invalid JSON")
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model=BASE, training_file=file.id)
    assert refused.value.body["param"] == "training_file"


def test_file_reports_uploaded_until_processing_delay_passes(server: EmulatorServer,
                                                             client: openai.OpenAI) -> None:
    server.state.file_processing_s = 0.2
    try:
        file_id = upload(client)
        assert client.files.retrieve(file_id).status == "uploaded"
        with pytest.raises(openai.BadRequestError, match="still being processed"):
            client.fine_tuning.jobs.create(model=BASE, training_file=file_id)
        assert client.files.wait_for_processing(file_id, poll_interval=0.05).status == "processed"
    finally:
        server.state.file_processing_s = 0.0


# -- jobs ------------------------------------------------------------------------------------------

def test_create_echoes_method_metadata_and_suffix(client: openai.OpenAI) -> None:
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client), method=method,
                                         suffix="demo", seed=7, metadata={"run": "r1"})

    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    assert (job.method.type, job.method.supervised.hyperparameters.n_epochs) == ("supervised", 2)
    assert (job.seed, job.metadata, job.fine_tuned_model) == (7, {"run": "r1"}, None)
    done = wait_until(client, job.id, "succeeded")
    assert done.fine_tuned_model == f"ft:{BASE}:loraflow-emulator:demo:{job.id[-8:]}"
    assert done.hyperparameters.n_epochs == 2 and done.hyperparameters.batch_size == 1  # "auto" resolved
    assert done.trained_tokens == 2 * sum(len(q.split()) + len(a.split()) for q, a in EXAMPLES)


def test_dpo_method_is_accepted(client: openai.OpenAI) -> None:
    line = {"input": {"messages": [{"role": "user", "content": "Say hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hi!"}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}]}
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client, json.dumps(line).encode()),
                                         method=method)
    assert job.method.dpo.hyperparameters.beta == 0.2


@pytest.mark.parametrize(("change", "param"), [
    ({"training_file": "file-unknown"}, "training_file"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"method": {"type": "reinforcement"}}, "method.type"),
    ({"suffix": "x" * 65}, "suffix"),
    ({"extra_body": {"colour": "blue"}}, "colour"),
])
def test_create_refuses_invalid_requests(client: openai.OpenAI, change: dict, param: str) -> None:
    arguments = {"model": BASE, "training_file": upload(client), **change}
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(**arguments)
    assert refused.value.body["param"] == param and refused.value.body["type"] == "invalid_request_error"


def test_list_filters_by_metadata_and_pages_newest_first(server: EmulatorServer,
                                                         client: openai.OpenAI) -> None:
    file_id = upload(client)
    mine = [client.fine_tuning.jobs.create(model=BASE, training_file=file_id,
                                           metadata={"batch": "b7", "n": str(i)})
            for i in range(5)]
    client.fine_tuning.jobs.create(model=BASE, training_file=file_id, metadata={"batch": "other"})
    before = requests_to(server, "GET /v1/fine_tuning/jobs")

    first = client.fine_tuning.jobs.list(limit=2, metadata={"batch": "b7"})
    listed = [job.id for job in first]

    assert first.has_more is True
    assert listed == [job.id for job in reversed(mine)]
    assert requests_to(server, "GET /v1/fine_tuning/jobs") - before == 3


def test_job_walks_validating_queued_running_succeeded(server: EmulatorServer, client: openai.OpenAI) -> None:
    timeline = Timeline(validating_s=0.2, queued_s=0.2, steps=5, step_s=0.06)
    with scripted(server, timeline):
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client))
    seen = [job.status]
    while seen[-1] != "succeeded":
        time.sleep(0.01)
        current = client.fine_tuning.jobs.retrieve(job.id)
        if current.status != seen[-1]:
            seen.append(current.status)
        if current.status == "running":
            assert current.estimated_finish is not None and current.fine_tuned_model is None

    assert seen == ["validating_files", "queued", "running", "succeeded"]
    assert current.fine_tuned_model and current.finished_at and current.estimated_finish is None
    csv = client.files.content(current.result_files[0]).text
    assert csv.splitlines()[0].startswith("step,train_loss") and len(csv.splitlines()) == 6


def test_events_are_newest_first_with_metrics(client: openai.OpenAI) -> None:
    job = wait_until(client, client.fine_tuning.jobs.create(model=BASE, training_file=upload(client)).id,
                     "succeeded")

    page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=4))

    assert page.has_more is True and [e.id for e in page.data] == [e.id for e in events[:3]]
    assert events[0].message == "The job has successfully completed"
    assert events[-1].message == "Validating training file"
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == [6, 5, 4, 3, 2, 1]
    assert set(metrics[0].data) == {"step", "total_steps", "train_loss", "train_mean_token_accuracy"}
    assert metrics[-1].message == f"Step 1/6: training loss={metrics[-1].data['train_loss']:.3f}"
    losses = [e.data["train_loss"] for e in reversed(metrics)]
    assert losses == sorted(losses, reverse=True)


def test_checkpoints_name_the_step(client: openai.OpenAI) -> None:
    job = wait_until(client, client.fine_tuning.jobs.create(model=BASE, training_file=upload(client)).id,
                     "succeeded")

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))

    assert [c.step_number for c in checkpoints] == [6, 4, 2]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-6"
    assert checkpoints[0].metrics.train_loss is not None and checkpoints[0].fine_tuning_job_id == job.id


def test_cancel_stops_a_running_job_and_refuses_an_ended_one(server: EmulatorServer,
                                                            client: openai.OpenAI) -> None:
    with scripted(server, SLOW):
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client))
    cancelled_before = server.state.counters["jobs_cancelled"]

    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert server.state.counters["jobs_cancelled"] == cancelled_before + 1
    with pytest.raises(openai.BadRequestError, match="already cancelled"):
        client.fine_tuning.jobs.cancel(job.id)


def test_pause_freezes_the_timeline_until_resume(server: EmulatorServer, client: openai.OpenAI) -> None:
    with scripted(server, Timeline(validating_s=0.01, queued_s=0.01, steps=10, step_s=0.05)):
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client))
    wait_until(client, job.id, "running")

    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    frozen = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    time.sleep(0.2)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)] == frozen

    assert client.fine_tuning.jobs.resume(job.id).status == "running"
    wait_until(client, job.id, "succeeded")
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.resume(job.id)


def test_fail_at_step_ends_failed_with_an_error(server: EmulatorServer, client: openai.OpenAI) -> None:
    with scripted(server, Timeline(validating_s=0.01, queued_s=0.01, steps=6, step_s=0.01, fail_at_step=3)):
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client))

    failed = wait_until(client, job.id, "failed", "succeeded")

    assert failed.status == "failed" and failed.fine_tuned_model is None and failed.finished_at
    assert failed.error.code == "invalid_training_file" and failed.error.message
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert events[0].level == "error"
    assert max(e.data["step"] for e in events if e.type == "metrics") == 2


def test_stall_at_step_stays_running_without_new_events(server: EmulatorServer,
                                                        client: openai.OpenAI) -> None:
    with scripted(server, Timeline(validating_s=0.01, queued_s=0.01, steps=6, step_s=0.01, stall_at_step=2)):
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client))
    time.sleep(0.15)  # well past the nominal finish at 0.08 s

    first = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    time.sleep(0.05)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))

    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    assert [e.id for e in events] == first
    assert next(e for e in events if e.type == "metrics").data["step"] == 2


def test_timeline_is_a_pure_function_of_time_and_speed() -> None:
    timeline = Timeline(validating_s=1, queued_s=1, steps=4, step_s=1, speed=2.0)

    assert progress(timeline, 100.0, 100.4).status == "validating_files"
    assert progress(timeline, 100.0, 100.9).status == "queued"
    assert (progress(timeline, 100.0, 102.6).status, progress(timeline, 100.0, 102.6).step) == ("running", 3)
    assert progress(timeline, 100.0, 103.0).status == "succeeded"
    paused = progress(timeline, 100.0, 110.0, pauses=[(102.0, None)])
    assert (paused.status, paused.step) == ("paused", 2)
    resumed = progress(timeline, 100.0, 110.2, pauses=[(102.0, 110.0)])
    assert (resumed.status, resumed.step, resumed.estimated_finish) == ("running", 2, 111.0)


# -- inference -------------------------------------------------------------------------------------

def test_tuned_model_answers_from_its_training_data(client: openai.OpenAI) -> None:
    job = wait_until(client, client.fine_tuning.jobs.create(model=BASE, training_file=upload(client)).id,
                     "succeeded")

    reply = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "Refund window for my shoes?"}])

    assert reply.choices[0].message.content == EXAMPLES[1][1]
    assert reply.choices[0].finish_reason == "stop" and reply.model == job.fine_tuned_model
    assert reply.usage.completion_tokens == len(EXAMPLES[1][1].split())


def test_base_model_answers_generically_and_honours_max_tokens(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Refund window for my shoes?"}]
    full = client.chat.completions.create(model=BASE, messages=messages).choices[0]
    short = client.chat.completions.create(model=BASE, messages=messages, max_tokens=3).choices[0]

    assert full.message.content not in [a for _, a in EXAMPLES] and full.finish_reason == "stop"
    assert short.finish_reason == "length" and len(short.message.content.split()) == 3


def test_unknown_fine_tuned_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="ft:gpt-4o-mini:acme::nope1234",
                                       messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"


# -- auth and faults -------------------------------------------------------------------------------

def test_wrong_api_key_is_an_authentication_error() -> None:
    with EmulatorServer(api_key="sk-right") as keyed:
        wrong = openai.OpenAI(base_url=keyed.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.files.list()
        assert refused.value.code == "invalid_api_key"
        right = openai.OpenAI(base_url=keyed.base_url, api_key="sk-right", max_retries=0)
        assert list(right.files.list()) == []


def test_rate_limit_is_retried_after_the_hinted_delay(server: EmulatorServer, client: openai.OpenAI) -> None:
    route = "GET /v1/fine_tuning/jobs"
    server.state.faults.add(FaultRule(route, "rate_limit", retry_after=0.05))
    with pytest.raises(openai.RateLimitError) as limited:
        client.fine_tuning.jobs.list(limit=1)
    assert limited.value.response.headers["retry-after"] == "1"

    server.state.faults.add(FaultRule(route, "rate_limit", retry_after=0.05))
    before = requests_to(server, route)
    client.with_options(max_retries=1).fine_tuning.jobs.list(limit=1)
    assert requests_to(server, route) - before == 2


def test_server_error_status_is_configurable(server: EmulatorServer, client: openai.OpenAI) -> None:
    server.state.faults.add(FaultRule("* /v1/files*", "server_error", status=503))
    with pytest.raises(openai.InternalServerError) as failed:
        client.files.list()
    assert failed.value.status_code == 503


def test_drop_cuts_the_connection(server: EmulatorServer, client: openai.OpenAI,
                                  caplog: pytest.LogCaptureFixture) -> None:
    server.state.faults.add(FaultRule("POST /v1/chat/completions", "drop"))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hi"}])
    assert client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hi"}]).choices
    assert not [r for r in caplog.records if r.levelno >= 40]  # the deliberate drop is not logged


def test_slow_delays_then_serves(server: EmulatorServer, client: openai.OpenAI) -> None:
    server.state.faults.add(FaultRule("GET /v1/files", "slow", delay_s=0.3))
    started = time.monotonic()
    client.files.list()
    assert time.monotonic() - started >= 0.3


def test_timeout_does_the_work_then_answers_too_late(server: EmulatorServer, client: openai.OpenAI) -> None:
    file_id = upload(client)
    server.state.faults.add(FaultRule("POST /v1/fine_tuning/jobs", "timeout", delay_s=1.0))
    before = server.state.counters["jobs_created"]
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).fine_tuning.jobs.create(model=BASE, training_file=file_id,
                                                                  metadata={"fault": "timeout"})
    assert server.state.counters["jobs_created"] == before + 1
    assert len(list(client.fine_tuning.jobs.list(metadata={"fault": "timeout"}))) == 1


def test_malformed_does_the_work_then_tears_the_body(server: EmulatorServer, client: openai.OpenAI) -> None:
    server.state.faults.add(FaultRule("POST /v1/files", "malformed"))
    before = server.state.counters["files_created"]
    with pytest.raises(json.JSONDecodeError):
        upload(client)
    assert server.state.counters["files_created"] == before + 1


def test_a_served_drop_does_the_work_and_loses_the_answer(server: EmulatorServer,
                                                          client: openai.OpenAI) -> None:
    server.state.faults.add(FaultRule("POST /v1/files", "drop", served=True))
    before = server.state.counters["files_created"]
    with pytest.raises(openai.APIConnectionError):
        upload(client)
    assert server.state.counters["files_created"] == before + 1
    server.state.faults.add(FaultRule("POST /v1/files", "drop"))
    with pytest.raises(openai.APIConnectionError):
        upload(client)
    assert server.state.counters["files_created"] == before + 1


def test_fault_expires_after_times_requests(server: EmulatorServer, client: openai.OpenAI) -> None:
    server.state.faults.add(FaultRule("GET /v1/files", "server_error", times=2))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.files.list()
    client.files.list()
    assert server.state.faults.rules == []


def test_control_api_scripts_faults_and_timeline(server: EmulatorServer, client: openai.OpenAI) -> None:
    control = httpx2.Client(base_url=f"{server.url}/_emulator")
    previous = control.get("/timeline").json()
    try:
        assert control.get("/health").json() == {"status": "ok", "apis": {
            "openai": "/v1", "together": "/together", "vertex": "/vertex", "bedrock": "/bedrock",
            "azure_openai": "/azure"}}
        control.post("/faults", json=[{"route": "GET /v1/files", "kind": "server_error", "status": 502}])
        with pytest.raises(openai.InternalServerError):
            client.files.list()
        assert control.post("/faults", json={"route": "GET /x", "kind": "explode"}).status_code == 400
        assert control.put("/timeline", json={"steps": 2, "step_s": 0.01}).json()["steps"] == 2
        assert server.state.timeline.steps == 2
        counters = control.get("/counters").json()
        assert counters["requests"]["GET /v1/files"] >= 1 and counters["files_created"] >= 1
        control.delete("/faults")
        assert server.state.faults.rules == []
    finally:
        control.put("/timeline", json=previous)
        control.close()


# -- persistence -----------------------------------------------------------------------------------

def test_restart_on_the_same_state_dir_keeps_files_and_jobs(tmp_path) -> None:
    with EmulatorServer(state_dir=tmp_path, timeline=Timeline(validating_s=0.1, queued_s=0.1, steps=3,
                                                              step_s=0.05)) as first:
        client = openai.OpenAI(base_url=first.base_url, api_key="test", max_retries=0)
        file_id = upload(client)
        job_id = client.fine_tuning.jobs.create(model=BASE, training_file=file_id, metadata={"k": "v"}).id
        first.state.set_timeline(SLOW)
        stopped_id = client.fine_tuning.jobs.create(model=BASE, training_file=file_id).id
        client.fine_tuning.jobs.cancel(stopped_id)

    assert (tmp_path / "files" / file_id).read_bytes() == TRAINING
    with EmulatorServer(state_dir=tmp_path) as second:
        client = openai.OpenAI(base_url=second.base_url, api_key="test", max_retries=0)
        assert client.files.content(file_id).content == TRAINING
        assert [job.id for job in client.fine_tuning.jobs.list(metadata={"k": "v"})] == [job_id]
        assert wait_until(client, job_id, "succeeded").fine_tuned_model
        assert client.fine_tuning.jobs.retrieve(stopped_id).status == "cancelled"
        assert second.state.timeline == SLOW and second.state.counters["jobs_created"] == 2
