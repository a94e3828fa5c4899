"""OpenAI adapter details, at the transport level (httpx2.MockTransport; respx cannot see httpx2)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable

import httpx2
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from providers.base import DatasetRef, JobRef, JobState, TrainingSpec
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.openai import STATES, OpenAIProvider

JOB = JobRef(provider="openai", job_id="ftjob-1")


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


def test_connection_errors_are_transient_and_garbage_is_unexpected() -> None:
    def refuse(req: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    with pytest.raises(TransientProviderError, match="connection failed"):
        provider_for(refuse).get_job(JOB)
    garbage = provider_for(lambda req: httpx2.Response(200, content=b"<html>",
                                                      headers={"content-type": "application/json"}))
    with pytest.raises(UnexpectedProviderResponse):
        garbage.get_job(JOB)


def test_failed_job_reports_the_message_and_blames_the_data() -> None:
    error = {"code": "invalid_training_file", "message": "line 3: missing messages", "param": "training_file"}
    status = provider_for(lambda req: httpx2.Response(200, json=job_body("failed", error=error))).get_job(JOB)
    assert (status.state, status.message, status.data_at_fault) == (JobState.FAILED, "line 3: missing messages",
                                                                  True)


def test_create_sends_method_hyperparameters_and_the_idempotency_key() -> None:
    seen: list[dict] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(req.content))
        return httpx2.Response(200, json=job_body("validating_files"))

    spec = TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=3, batch_size=8, seed=42, suffix="demo")
    data = DatasetRef(provider="openai", train_file_id="file-1", validation_file_id="file-2", sha256="a" * 64)
    job = provider_for(handler).create_job(spec, data, idempotency_key="key-a1")
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
