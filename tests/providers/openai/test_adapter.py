"""OpenAI adapter details, at the transport level (httpx2.MockTransport; respx cannot see httpx2)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from datetime import date

import httpx2
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from providers.base import DatasetRef, JobRef, JobState, ModelRef, TrainingSpec
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.openai.adapter import STATES, OpenAIOptions, OpenAIProvider

JOB = JobRef(provider="openai", job_id="ftjob-1")
SPEC = TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=3, batch_size=8, seed=42, suffix="demo")
DATA = DatasetRef(provider="openai", train_file_id="file-1", validation_file_id="file-2", sha256="a" * 64)


def provider_for(handler: Callable[[httpx2.Request], httpx2.Response]) -> OpenAIProvider:
    client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    return OpenAIProvider(client)


def job_body(status: str, **fields: object) -> dict:
    return {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1, "model": "gpt-4o-mini-2024-07-18",
            "status": status, "training_file": "file-1", "fine_tuned_model": None, "error": None, **fields}


def test_the_status_table_covers_every_status_the_sdk_knows() -> None:
    sdk_statuses = set(typing.get_args(FineTuningJob.model_fields["status"].annotation))
    # `paused` is served by the API (pause/resume endpoints) but missing from the SDK's Literal
    assert set(STATES) == sdk_statuses | {"paused"}
    assert {STATES[s] for s in ("succeeded", "failed", "cancelled")} == {
        s for s in JobState if s.is_terminal}


def test_an_unknown_status_is_a_bug_not_a_state() -> None:
    provider = provider_for(lambda req: httpx2.Response(200, json=job_body("exploded")))
    with pytest.raises(UnexpectedProviderResponse, match="unknown status 'exploded'"):
        provider.get_job(JOB)


@pytest.mark.parametrize(("status", "error"), [
    (400, PermanentProviderError), (401, PermanentProviderError), (403, PermanentProviderError),
    (404, PermanentProviderError), (422, PermanentProviderError), (408, TransientProviderError),
    (409, TransientProviderError), (429, TransientProviderError), (500, TransientProviderError),
    (503, TransientProviderError),
])
def test_http_errors_map_to_the_error_tree(status: int, error: type) -> None:
    body = {"error": {"message": "nope", "type": "x", "code": None, "param": None}}
    provider = provider_for(lambda req: httpx2.Response(status, json=body, headers={"retry-after": "7"}))
    with pytest.raises(error) as raised:
        provider.get_job(JOB)
    assert raised.value.status_code == status and "nope" in str(raised.value)
    if status == 429:
        assert raised.value.retry_after == 7


def test_connection_errors_and_torn_bodies_are_transient_unknown_shapes_unexpected() -> None:
    def refuse(req: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    with pytest.raises(TransientProviderError, match="connection failed"):
        provider_for(refuse).get_job(JOB)
    torn = provider_for(lambda req: httpx2.Response(200, content=b'{"id": "ftjob-',
                                                   headers={"content-type": "application/json"}))
    with pytest.raises(TransientProviderError, match="not JSON"):
        torn.get_job(JOB)
    strange = provider_for(lambda req: httpx2.Response(200, json={"surprise": True}))
    with pytest.raises(UnexpectedProviderResponse, match="unknown status None"):
        strange.get_job(JOB)


def test_failed_job_reports_the_message_and_blames_the_data() -> None:
    error = {"code": "invalid_training_file", "message": "line 3: missing messages", "param": "training_file"}
    status = provider_for(lambda req: httpx2.Response(200, json=job_body("failed", error=error))).get_job(JOB)
    assert (status.state, status.message, status.data_at_fault) == \
        (JobState.FAILED, "line 3: missing messages", True)


SFT_LINE = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
DPO_LINE = {"input": {"messages": [{"role": "user", "content": "q"}]},
            "preferred_output": [{"role": "assistant", "content": "a"}],
            "non_preferred_output": [{"role": "assistant", "content": "b"}]}


def creating(first_line: dict, seen: list[dict]) -> Callable[[httpx2.Request], httpx2.Response]:
    """A handler that serves the training file's content and records create bodies."""
    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/content"):
            return httpx2.Response(200, content=(json.dumps(first_line) + "\n").encode() * 3)
        seen.append(json.loads(req.content))
        return httpx2.Response(200, json=job_body("validating_files"))
    return handler


def test_create_sends_method_hyperparameters_and_the_idempotency_key() -> None:
    seen: list[dict] = []
    handler = creating(SFT_LINE, seen)

    job = provider_for(handler).create_job(SPEC, DATA, idempotency_key="key-a1")
    assert job == JobRef(provider="openai", job_id="ftjob-1", idempotency_key="key-a1")
    assert seen == [{
        "model": "gpt-4o-mini-2024-07-18", "training_file": "file-1", "validation_file": "file-2",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": "auto"}}},
        "metadata": {"loraflow_key": "key-a1"}, "seed": 42, "suffix": "demo",
    }]


@pytest.mark.parametrize(("knobs", "message"), [
    ({"lora_r": 16}, "OpenAI exposes no LoRA rank"),
    ({"lora_alpha": 32, "lora_dropout": 0.1}, "remove training.lora_alpha, training.lora_dropout"),
    ({"learning_rate": 1e-4}, "learning_rate_multiplier"),
    ({"batch_size": 512}, "training.batch_size: OpenAI allows 1 to 256"),
])
def test_check_spec_says_what_openai_hides(knobs: dict, message: str) -> None:
    provider = provider_for(lambda req: httpx2.Response(500))
    with pytest.raises(ConfigError, match=message):
        provider.check_spec(TrainingSpec(base_model="gpt-4o-mini-2024-07-18", **knobs))


def test_options_and_credentials_are_checked_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable OPENAI_API_KEY"):
        OpenAIProvider.from_options({})
    with pytest.raises(ConfigError, match="provider.options.learning_rate_multipler: unknown key"):
        OpenAIProvider.from_options({"learning_rate_multipler": 2}, api_key="k")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAIProvider.from_options({}).client.api_key == "sk-from-env"


def test_preference_data_is_trained_with_dpo() -> None:
    seen: list[dict] = []
    provider = OpenAIProvider(provider_for(creating(DPO_LINE, seen)).client, OpenAIOptions(dpo_beta=0.2))
    provider.create_job(SPEC, DATA, idempotency_key="key-a1")
    assert seen[0]["method"] == {"type": "dpo", "dpo": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": "auto", "beta": 0.2}}}


def test_a_create_whose_answer_is_lost_is_found_by_its_key_not_sent_again() -> None:
    posts: list[str] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/content"):
            return httpx2.Response(200, content=json.dumps(SFT_LINE).encode())
        if req.method == "POST":
            posts.append(req.url.path)
            raise httpx2.ReadTimeout("no answer in time")
        assert req.url.params["metadata[loraflow_key]"] == "key-a1"
        listed = job_body("queued", metadata={"loraflow_key": "key-a1"})
        return httpx2.Response(200, json={"object": "list", "data": [listed], "has_more": False})

    client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.test/v1", max_retries=2,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    job = OpenAIProvider(client).create_job(SPEC, DATA, idempotency_key="key-a1")
    assert job == JobRef(provider="openai", job_id="ftjob-1", idempotency_key="key-a1")
    assert posts == ["/v1/fine_tuning/jobs"]  # the SDK's own retry would have made a second job


def test_a_lost_create_with_no_job_behind_it_stays_transient() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/content"):
            return httpx2.Response(200, content=json.dumps(SFT_LINE).encode())
        if req.method == "POST":
            return httpx2.Response(503, json={"error": {"message": "overloaded"}})
        return httpx2.Response(200, json={"object": "list", "data": [], "has_more": False})

    with pytest.raises(TransientProviderError, match="overloaded"):
        provider_for(handler).create_job(SPEC, DATA, idempotency_key="key-a1")


def test_checks_follow_the_catalog_ranges() -> None:
    provider = provider_for(lambda req: httpx2.Response(500))
    with pytest.raises(ConfigError,
                       match=r"training.epochs: OpenAI allows 1 to 50 .*catalog, as of 2026-12-04"):
        provider.check_spec(TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=60))
    zero = OpenAIProvider(provider.client, OpenAIOptions(learning_rate_multiplier=0))
    with pytest.raises(ConfigError,
                       match="provider.options.learning_rate_multiplier: OpenAI allows more than 0"):
        zero.check_spec(TrainingSpec(base_model="gpt-4o-mini-2024-07-18"))
    assert "not in the catalog" in provider.check_spec(TrainingSpec(base_model="ft:gpt-4o-mini:acme::x1"))[0]


def test_service_dates_warn_before_and_refuse_after() -> None:
    client = provider_for(lambda req: httpx2.Response(500)).client
    spec = TrainingSpec(base_model="gpt-4o-mini-2024-07-18")

    warnings = OpenAIProvider(client, today=lambda: date(2026, 11, 28), enforce_dates=True).check_spec(spec)
    assert warnings == [
        "OpenAI takes no new fine-tuning jobs after 2027-01-06 (39 days from now)",
        ("gpt-4o-mini-2024-07-18 and its fine-tunes shut down on 2027-01-14 (47 days from now): "
         "the tuned model stops answering then")]
    assert OpenAIProvider(client, today=lambda: date(2027, 1, 6), enforce_dates=True).check_spec(spec)
    with pytest.raises(ConfigError, match="no new fine-tuning jobs since 2027-01-06"):
        OpenAIProvider(client, today=lambda: date(2027, 1, 7), enforce_dates=True).check_spec(spec)


def test_past_service_dates_only_warn_off_openai_so_the_offline_quickstart_keeps_working() -> None:
    spec = TrainingSpec(base_model="gpt-4o-mini-2024-07-18")
    vendor = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1")
    with pytest.raises(ConfigError, match="no new fine-tuning jobs since 2027-01-06"):
        OpenAIProvider(vendor, today=lambda: date(2027, 2, 1)).check_spec(spec)
    emulator = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:8765/v1")
    warnings = OpenAIProvider(emulator, today=lambda: date(2027, 2, 1)).check_spec(spec)
    assert len(warnings) == 2 and all(w.endswith("(not refused: this endpoint is not OpenAI's)")
                                      for w in warnings)


def test_paused_job_reports_its_frozen_step() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/events"):
            metrics = {"id": "e1", "object": "fine_tuning.job.event", "created_at": 1, "level": "info",
                       "message": "Step 4/10", "type": "metrics",
                       "data": {"step": 4, "total_steps": 10, "train_loss": 0.5}}
            return httpx2.Response(200, json={"object": "list", "data": [metrics], "has_more": False})
        return httpx2.Response(200, json=job_body("paused"))

    status = provider_for(handler).get_job(JOB)
    assert (status.state, status.step, status.total_steps, status.metrics) == (JobState.PAUSED, 4, 10,
                                                                             {"train_loss": 0.5})


def test_success_without_a_model_id_keeps_the_job_running() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/jobs/ftjob-1"):
            return httpx2.Response(200, json=job_body("succeeded"))
        return httpx2.Response(200, json={"object": "list", "data": [], "has_more": False})

    status = provider_for(handler).get_job(JOB)
    assert status.state is JobState.RUNNING and status.model is None and "model id" in status.message


def test_success_resolves_the_model_and_the_final_checkpoint_metrics() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path.endswith("/checkpoints"):
            checkpoint = {"id": "c", "object": "fine_tuning.job.checkpoint", "created_at": 1,
                          "step_number": 9,
                          "fine_tuning_job_id": "ftjob-1", "fine_tuned_model_checkpoint": "ft:x:ckpt-step-9",
                          "metrics": {"step": 9, "train_loss": 0.2, "full_valid_loss": 0.3}}
            return httpx2.Response(200, json={"object": "list", "data": [checkpoint], "has_more": False})
        if req.url.path.endswith("/events"):
            return httpx2.Response(200, json={"object": "list", "data": [], "has_more": False})
        return httpx2.Response(200, json=job_body("succeeded", fine_tuned_model="ft:gpt-4o-mini:acme::x1"))

    status = provider_for(handler).get_job(JOB)
    assert status.model == ModelRef(provider="openai", model_id="ft:gpt-4o-mini:acme::x1",
                                    base_model="gpt-4o-mini-2024-07-18", job_id="ftjob-1")
    assert status.metrics == {"train_loss": 0.2, "full_valid_loss": 0.3}


def test_the_result_csv_becomes_a_loss_curve() -> None:
    csv_text = ("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
                "1,1.5,0.4,,\n2,1.1,0.6,1.2,0.5\n")

    def handler(req: httpx2.Request) -> httpx2.Response:
        if req.url.path == "/v1/files/file-r/content":
            return httpx2.Response(200, content=csv_text.encode())
        return httpx2.Response(200, json=job_body("succeeded", result_files=["file-r"]))

    assert provider_for(handler).loss_curve(JOB) == [
        {"step": 1.0, "train_loss": 1.5, "train_accuracy": 0.4},
        {"step": 2.0, "train_loss": 1.1, "train_accuracy": 0.6, "valid_loss": 1.2,
         "valid_mean_token_accuracy": 0.5}]
    assert provider_for(lambda req: httpx2.Response(200, json=job_body("running"))).loss_curve(JOB) == []


def test_an_upload_killed_before_its_record_is_found_not_sent_again(tmp_path) -> None:
    from providers.base import PreparedDataset
    from tests.providers.openai.stub import OpenAIStub

    stub = OpenAIStub()
    provider = OpenAIProvider(stub.client(), OpenAIOptions(file_poll_interval_s=0.01))
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n', encoding="utf-8")
    first = provider.upload(PreparedDataset(train_path=train, sha256="d" * 64, train_examples=1))
    again = provider.upload(PreparedDataset(train_path=train, sha256="d" * 64, train_examples=1))
    other = provider.upload(PreparedDataset(train_path=train, sha256="e" * 64, train_examples=1))
    assert again.train_file_id == first.train_file_id != other.train_file_id
    assert stub.requests.count(("POST", "/files")) == 2
