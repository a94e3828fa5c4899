"""The Vertex adapter: its state table, error translation, knob checks and retry policy, and the emulator's
Vertex and Cloud Storage routes driven through the real SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("google.genai", reason="the vertex extra is not installed")

import httpx
import requests
from google.api_core import exceptions as gcs_errors
from google.genai import errors as genai_errors
from google.genai import types

from emulator import EmulatorServer, FaultRule, Timeline
from providers.base import JobRef, JobState, PreparedDataset, TrainingSpec
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.vertex.adapter import REFUSED_STATES, STATES, VertexProvider
from providers.vertex.client import translated
from tests.conftest import QUICKSTART

FLASH = TrainingSpec(base_model="gemini-3.5-flash", epochs=1, suffix="unit")
QUICK = {"retry_initial_delay_s": 0.01, "retry_max_delay_s": 0.02, "gcs_retry_timeout_s": 2}
FAST = Timeline(validating_s=0.05, queued_s=0.05, steps=4, step_s=0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key="k", timeline=FAST) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_leftover_faults(server: EmulatorServer) -> Iterator[None]:
    yield
    server.state.faults.clear()


def provider_on(server: EmulatorServer, **options: object) -> VertexProvider:
    return VertexProvider.from_options({**QUICK, **options}, base_url=server.base_url_for("vertex"),
                                       api_key="k")


def dataset(tmp_path: Path, marker: str) -> PreparedDataset:
    lines = (QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    lines.append(json.dumps({"messages": [{"role": "user", "content": marker},
                                          {"role": "assistant", "content": f"ok {marker}"}]}))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PreparedDataset(train_path=path, sha256=marker.encode().hex().ljust(64, "0")[:64],
                           train_examples=21)


# -- the state table ---------------------------------------------------------------------------------

def test_the_state_table_covers_every_job_state_google_genai_knows() -> None:
    assert set(STATES) | REFUSED_STATES == set(types.JobState)
    assert not set(STATES) & REFUSED_STATES


def test_the_decided_states() -> None:
    assert STATES[types.JobState.JOB_STATE_PAUSED] is JobState.PAUSED and not JobState.PAUSED.is_terminal
    assert STATES[types.JobState.JOB_STATE_EXPIRED] is JobState.FAILED
    assert STATES[types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED] is JobState.SUCCEEDED
    assert STATES[types.JobState.JOB_STATE_UPDATING] is JobState.RUNNING


def _stubbed(job: dict) -> VertexProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=job)
    http = types.HttpOptions(base_url="https://vertex.invalid/", httpx_client=httpx.Client(
        transport=httpx.MockTransport(handler)))
    provider = VertexProvider.from_options({}, base_url="https://vertex.invalid", api_key="t")
    from google import genai
    from google.oauth2.credentials import Credentials
    provider.client = genai.Client(vertexai=True, project="p", location="us-central1",
                                   credentials=Credentials(token="t"), http_options=http)
    return provider


NAME = "projects/p/locations/us-central1/tuningJobs/1"


@pytest.mark.parametrize(("vendor", "endpoint", "expected"), [
    ("JOB_STATE_PARTIALLY_SUCCEEDED", True, JobState.SUCCEEDED),
    ("JOB_STATE_PARTIALLY_SUCCEEDED", False, JobState.FAILED),
    ("JOB_STATE_SUCCEEDED", False, JobState.RUNNING),
    ("JOB_STATE_EXPIRED", False, JobState.FAILED),
    ("JOB_STATE_PAUSED", False, JobState.PAUSED),
])
def test_a_result_needs_a_tuned_endpoint(vendor: str, endpoint: bool, expected: JobState) -> None:
    job = {"name": NAME, "state": vendor, "baseModel": "gemini-3.5-flash"}
    if endpoint:
        job["tunedModel"] = {"endpoint": "projects/p/locations/us-central1/endpoints/9"}
    status = _stubbed(job).get_job(JobRef(provider="vertex", job_id=NAME))
    assert status.state is expected and status.vendor_state == vendor
    assert (status.model is not None) == (expected is JobState.SUCCEEDED)
    if expected is JobState.FAILED:
        assert status.message


def test_an_unknown_or_missing_state_is_unexpected() -> None:
    for state in ("JOB_STATE_UNSPECIFIED", None):
        with pytest.raises(UnexpectedProviderResponse):
            _stubbed({"name": NAME, "state": state}).get_job(JobRef(provider="vertex", job_id=NAME))


# -- error translation -------------------------------------------------------------------------------

def _genai(code: int, status: str) -> genai_errors.APIError:
    body = {"error": {"code": code, "message": "m", "status": status}}
    return (genai_errors.ClientError if code < 500 else genai_errors.ServerError)(code, body)


@pytest.mark.parametrize(("error", "expected"), [
    (_genai(429, "RESOURCE_EXHAUSTED"), TransientProviderError),
    (_genai(408, "DEADLINE_EXCEEDED"), TransientProviderError),
    (_genai(500, "INTERNAL"), TransientProviderError),
    (_genai(503, "UNAVAILABLE"), TransientProviderError),
    (_genai(400, "INVALID_ARGUMENT"), PermanentProviderError),
    (_genai(403, "PERMISSION_DENIED"), PermanentProviderError),
    (_genai(404, "NOT_FOUND"), PermanentProviderError),
    (httpx.ConnectError("refused"), TransientProviderError),
    (httpx.ReadTimeout("slow"), TransientProviderError),
    (json.JSONDecodeError("torn", "{", 1), TransientProviderError),
    (gcs_errors.TooManyRequests("slow down"), TransientProviderError),
    (gcs_errors.ServiceUnavailable("down"), TransientProviderError),
    (gcs_errors.RetryError("gave up", cause=None), TransientProviderError),
    (gcs_errors.Forbidden("no"), PermanentProviderError),
    (gcs_errors.NotFound("no bucket"), PermanentProviderError),
    (requests.ConnectionError("reset"), TransientProviderError),
    (KeyError("tunedModel"), UnexpectedProviderResponse),
])
def test_sdk_errors_are_translated_in_one_place(error: Exception, expected: type) -> None:
    with pytest.raises(expected) as raised, translated():
        raise error
    assert raised.value.__cause__ is error


def test_missing_google_credentials_is_a_config_error() -> None:
    from google.auth.exceptions import DefaultCredentialsError
    with pytest.raises(ConfigError, match="application-default"), translated():
        raise DefaultCredentialsError("none")


# -- knobs and options -------------------------------------------------------------------------------

@pytest.mark.parametrize(("update", "options", "match"), [
    ({"epochs": 100}, {}, "training.epochs: Vertex allows 1 to 20"),
    ({"learning_rate": 1e-4}, {}, "learning_rate_multiplier instead"),
    ({"lora_alpha": 16}, {}, "training.lora_alpha: Vertex exposes no LoRA alpha"),
    ({"batch_size": 8}, {}, "training.batch_size"),
    ({"lora_target_modules": ["q_proj"]}, {}, "training.lora_target_modules"),
    ({"lora_r": 12}, {}, "adapter sizes for gemini-3.5-flash .* are 1, 2, 4, 8, 16; got 12"),
    ({"lora_r": 32}, {}, "are 1, 2, 4, 8, 16; got 32"),
    ({"lora_r": 4}, {"adapter_size": 8}, "disagrees with provider.options.adapter_size 8"),
    ({}, {"learning_rate_multiplier": 50},
     "learning_rate_multiplier: Vertex allows more than 0 and at most 10"),
])
def test_check_spec_names_the_knob_and_the_allowed_values(update: dict, options: dict, match: str) -> None:
    provider = VertexProvider.from_options(options, base_url="http://127.0.0.1:9", api_key="t")
    with pytest.raises(ConfigError, match=match):
        provider.check_spec(FLASH.model_copy(update=update))


@pytest.mark.parametrize(("retired", "replacement"), [
    ("gemini-2.5-flash", "gemini-3.5-flash-lite or gemini-3.1-flash-lite"),
    ("gemini-2.5-pro", "gemini-3.5-flash"), ("gemini-2.5-flash-lite", "gemini-3.1-flash-lite")])
def test_a_retired_base_is_refused_with_the_replacement_google_names(retired: str, replacement: str) -> None:
    provider = VertexProvider.from_options({}, base_url="http://127.0.0.1:9", api_key="t")
    with pytest.raises(ConfigError, match=f"retired on 2026-10-16; the vendor recommends {replacement}"):
        provider.check_spec(FLASH.model_copy(update={"base_model": retired}))
    for current in ("gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite"):
        warnings = provider.check_spec(FLASH.model_copy(update={"base_model": current}))
        assert any("recalled" in w for w in warnings)


def test_check_spec_warns_about_what_vertex_ignores() -> None:
    provider = VertexProvider.from_options({"adapter_size": 8}, base_url="http://127.0.0.1:9", api_key="t")
    warnings = provider.check_spec(FLASH.model_copy(update={"seed": 3, "lora_r": 8}))
    assert any("no seed" in w for w in warnings)
    assert any("not in the catalog" in w for w in provider.check_spec(FLASH.model_copy(
        update={"base_model": "gemini-9-ultra"})))


@pytest.mark.parametrize(("options", "match"), [
    ({"adapter_size": 3}, "provider.options.adapter_size"),
    ({"region": "eu"}, "provider.options.region: unknown key"),
    ({"retry_attempts": 0}, "provider.options.retry_attempts"),
])
def test_options_are_checked(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        VertexProvider.from_options(options, base_url="http://127.0.0.1:9")


def test_outside_the_emulator_project_and_bucket_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ConfigError, match="provider.options.project is required"):
        VertexProvider.from_options({"gcs_bucket": "b"})
    with pytest.raises(ConfigError, match="gcs_bucket is required"):
        VertexProvider.from_options({"project": "p"})
    with pytest.raises(ConfigError, match="not an API key"):
        VertexProvider.from_options({"project": "p", "gcs_bucket": "b"}, api_key="sk-1")


def test_retries_are_configured_deliberately() -> None:
    provider = VertexProvider.from_options({"retry_attempts": 4}, base_url="http://127.0.0.1:9", api_key="t")
    retry = provider.client._api_client._http_options.retry_options
    assert retry.attempts == 4 and set(retry.http_status_codes) == {408, 429, 500, 502, 503, 504}


# -- against the emulator ----------------------------------------------------------------------------

def test_throttled_reads_are_retried_by_the_sdk(server: EmulatorServer, tmp_path: Path) -> None:
    provider = provider_on(server, retry_attempts=3)
    job = provider.create_job(FLASH, provider.upload(dataset(tmp_path, "retried")), idempotency_key="retried")
    server.state.faults.add(FaultRule("GET /vertex/v1beta1/projects/*/tuningJobs/*", "rate_limit", times=2,
                                      retry_after=0.01))
    assert isinstance(provider.get_job(job).state, JobState)
    assert not server.state.faults.rules


def test_create_is_never_retried_and_a_lost_answer_is_found_by_key(server: EmulatorServer,
                                                                   tmp_path: Path) -> None:
    provider = provider_on(server, retry_attempts=5)
    data = provider.upload(dataset(tmp_path, "create-once"))
    before = server.state.counters
    server.state.faults.add(FaultRule("POST /vertex/v1beta1/projects/*/tuningJobs", "server_error",
                                      status=503))
    with pytest.raises(TransientProviderError):
        provider.create_job(FLASH, data, idempotency_key="create-once")
    server.state.faults.add(FaultRule("POST /vertex/v1beta1/projects/*/tuningJobs", "drop", served=True))
    job = provider.create_job(FLASH, data, idempotency_key="create-once")
    after = server.state.counters
    route = "POST /vertex/v1beta1/projects/{project}/locations/{location}/tuningJobs"
    assert after["requests"][route] - before["requests"].get(route, 0) == 2
    assert after["jobs_created"] - before["jobs_created"] == 1
    assert provider.find_job("create-once") == job


def test_an_upload_is_made_once_per_content(server: EmulatorServer, tmp_path: Path) -> None:
    provider, data = provider_on(server), dataset(tmp_path, "upload-once")
    before = server.state.counters["files_created"]
    first = provider.upload(data)
    assert provider.upload(data) == first
    assert server.state.counters["files_created"] - before == 1
    assert first.train_file_id.startswith("gs://loraflow-emulator/loraflow/")
    line = json.loads(provider.storage.bucket("loraflow-emulator").blob(
        first.train_file_id.split("/", 3)[3]).download_as_bytes().splitlines()[0])
    assert [turn["role"] for turn in line["contents"]] == ["user", "model"]


def test_a_large_file_goes_up_in_a_resumable_session_in_chunks(server: EmulatorServer,
                                                                tmp_path: Path) -> None:
    bucket = provider_on(server).storage.bucket("loraflow-emulator")
    content = b"".join(b'{"contents": [{"role": "user", "parts": [{"text": "%06d"}]}]}\n' % n
                       for n in range(12000))
    path = tmp_path / "big.jsonl"
    path.write_bytes(content)
    blob = bucket.blob("big/train.jsonl", chunk_size=256 * 1024)  # above 8 MB the client does this on its own
    blob.upload_from_filename(str(path), if_generation_match=0)
    assert len(content) > 2 * 256 * 1024  # three PUTs: two full chunks and the rest
    assert bucket.blob("big/train.jsonl").download_as_bytes() == content
    again = bucket.blob("big/train.jsonl", chunk_size=256 * 1024)
    with pytest.raises(gcs_errors.PreconditionFailed):
        again.upload_from_filename(str(path), if_generation_match=0)


def test_a_failed_job_carries_the_vendor_message_and_blames_the_data(server: EmulatorServer,
                                                                      tmp_path: Path) -> None:
    provider = provider_on(server)
    data = provider.upload(dataset(tmp_path, "fails"))
    previous = server.state.set_timeline(Timeline(validating_s=0.01, queued_s=0.01, steps=4, step_s=0.01,
                                                  fail_at_step=2, fail_message="bad example on line 3"))
    try:
        job = provider.create_job(FLASH, data, idempotency_key="fails")
    finally:
        server.state.set_timeline(previous)
    from tests.providers.contract import finish
    status = finish(provider, job)
    assert status.state is JobState.FAILED and status.data_at_fault
    assert "line 3" in status.message


def test_refusals_are_permanent(server: EmulatorServer, tmp_path: Path) -> None:
    provider = provider_on(server)
    data = provider.upload(dataset(tmp_path, "refused"))
    with pytest.raises(PermanentProviderError, match="not supported"):
        provider.create_job(FLASH.model_copy(update={"base_model": "gemini-9-ultra"}), data,
                            idempotency_key="refused")
    with pytest.raises(PermanentProviderError, match="does not exist"):
        provider.create_job(FLASH, data.model_copy(update={"train_file_id": "gs://loraflow-emulator/missing"}),
                            idempotency_key="refused")


def test_tuning_data_stats(server: EmulatorServer, tmp_path: Path) -> None:
    provider = provider_on(server)
    job = provider.create_job(FLASH.model_copy(update={"epochs": 2}),
                              provider.upload(dataset(tmp_path, "stats")), idempotency_key="stats")
    from tests.providers.contract import finish
    status = finish(provider, job)
    stats = provider.tuning_data_stats(job)
    assert stats["examples"] == 21 and stats["steps"] == 4
    assert status.trained_tokens == stats["billable_tokens"] > 0


def test_state_survives_an_emulator_restart(tmp_path: Path) -> None:
    with EmulatorServer(state_dir=tmp_path / "state", api_key="k", timeline=FAST) as first:
        provider, prepared = provider_on(first), dataset(tmp_path, "restart")
        data = provider.upload(prepared)
        job = provider.create_job(FLASH, data, idempotency_key="restart")
    with EmulatorServer(state_dir=tmp_path / "state", api_key="k") as second:
        provider = provider_on(second)
        assert provider.find_job("restart") == job
        assert provider.upload(prepared) == data
        assert second.state.counters["files_created"] == 1
