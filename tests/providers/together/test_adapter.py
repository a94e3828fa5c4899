"""Together adapter details at the transport level (respx on the SDK's own httpx client)."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import httpx
import pytest

together = pytest.importorskip("together", reason="the together extra is not installed")

from together.lib.types.fine_tuning import COMPLETED_STATUSES, FinetuneJobStatus
from together.types import FinetuneResponse

from providers.base import DatasetRef, JobRef, JobState, PreparedDataset, TrainingSpec
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.together.adapter import STATES, TogetherOptions, TogetherProvider, idempotency_tag
from tests.providers.together.stub import BASE_URL, TogetherStub

LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
SPEC = TrainingSpec(base_model=LLAMA, epochs=2, learning_rate=1e-4, lora_r=16, lora_alpha=32,
                    lora_dropout=0.05, lora_target_modules=["q_proj", "v_proj"], seed=7, suffix="demo")
API = f"{BASE_URL}/v1"
SFT_LINE = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
DPO_LINE = {"input": {"messages": [{"role": "user", "content": "q"}]},
            "preferred_output": [{"role": "assistant", "content": "a"}],
            "non_preferred_output": [{"role": "assistant", "content": "b"}]}


@pytest.fixture
def stub() -> TogetherStub:
    return TogetherStub()


def provider_on(stub: TogetherStub, **options: object) -> TogetherProvider:
    return TogetherProvider(stub.client(), TogetherOptions(file_poll_interval_s=0.01, **options),
                            sleep=lambda s: None)


def with_file(stub: TogetherStub, line: dict) -> DatasetRef:
    stub.files["file-t"] = (json.dumps(line) + "\n").encode() * 3
    return DatasetRef(provider="together", train_file_id="file-t", sha256="a" * 64)


def job_json(status: str, **fields: object) -> dict:
    return {"id": "ft-1", "status": status, "created_at": "2026-11-28T00:00:00Z",
            "updated_at": "2026-11-28T00:00:00Z", "model": LLAMA, **fields}


# -- status table ----------------------------------------------------------------------------------

def test_the_status_table_covers_every_status_the_sdk_knows() -> None:
    generated = set(typing.get_args(FinetuneResponse.model_fields["status"].annotation))
    assert set(STATES) == {status.value for status in FinetuneJobStatus} == generated | {"user_error"}
    assert {s for s, state in STATES.items() if state.is_terminal} == {s.value for s in COMPLETED_STATUSES}
    assert STATES["cancel_requested"] is JobState.CANCELLING


def test_an_unknown_status_is_a_bug_not_a_state(stub: TogetherStub) -> None:
    stub.router.get(f"{API}/fine-tunes/ft-x").mock(return_value=httpx.Response(
        200, json=job_json("exploded")))
    with pytest.raises(UnexpectedProviderResponse, match="unknown status 'exploded'"):
        provider_on(stub).get_job(JobRef(provider="together", job_id="ft-x"))


# -- create ----------------------------------------------------------------------------------------

def test_create_sends_the_lora_knobs_with_lora_true_and_the_tag_in_the_suffix(stub: TogetherStub) -> None:
    job = provider_on(stub).create_job(SPEC, with_file(stub, SFT_LINE), idempotency_key="key-a1")

    body = stub.bodies[0]
    assert body["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                     "lora_trainable_modules": "q_proj,v_proj"}
    assert body["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    assert (body["n_epochs"], body["learning_rate"], body["random_seed"]) == (2, 1e-4, 7)
    assert body["suffix"] == f"demo-{idempotency_tag('key-a1')}" and len(body["suffix"]) <= 40
    assert job == JobRef(provider="together", job_id="ft-1", idempotency_key="key-a1")


def test_preference_data_is_trained_with_dpo(stub: TogetherStub) -> None:
    provider_on(stub, dpo_beta=0.2).create_job(SPEC, with_file(stub, DPO_LINE), idempotency_key="k")
    method = stub.bodies[0]["training_method"]
    assert (method["method"], method["dpo_beta"]) == ("dpo", 0.2)


def test_a_create_whose_answer_is_lost_is_found_by_its_tag_not_sent_again(stub: TogetherStub) -> None:
    data, provider = with_file(stub, SFT_LINE), provider_on(stub)

    def created_then_lost(request: httpx.Request) -> httpx.Response:
        stub._create(request)
        raise httpx.ReadTimeout("no answer in time", request=request)

    stub.router.post(f"{API}/fine-tunes").mock(side_effect=created_then_lost)
    job = provider.create_job(SPEC, data, idempotency_key="key-a1")
    assert job.job_id == "ft-1" and len(stub.bodies) == 1 and provider.find_job("key-a1") == job


def test_a_refused_knob_is_a_config_error_before_anything_is_sent(stub: TogetherStub) -> None:
    with pytest.raises(ConfigError, match="batch size"):
        provider_on(stub).create_job(SPEC.model_copy(update={"batch_size": 2}), with_file(stub, SFT_LINE),
                                     idempotency_key="k")
    assert stub.bodies == []


# -- check_spec ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"lora_r": 128}, r"training.lora_r: Together allows 1 to 64 .*\(Together's limits endpoint, as of"),
    ({"lora_target_modules": ["w_up"]}, r"\['w_up'\] are not trainable .*allowed values: all-linear, q_proj"),
    ({"epochs": 30}, "training.epochs: Together allows 1 to 20"),
    ({"batch_size": 64}, "training.batch_size: Together allows 8 to 32"),
    ({"learning_rate": 0.5}, "training.learning_rate: Together allows 1e-06 to 0.01"),
    ({"suffix": "x" * 30}, "training.suffix: at most 27 characters"),
])
def test_check_spec_holds_the_knobs_against_the_live_limits(stub: TogetherStub, change: dict,
                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        provider_on(stub).check_spec(SPEC.model_copy(update=change))


def test_an_unknown_model_is_a_config_error(stub: TogetherStub) -> None:
    stub.router.get(f"{API}/fine-tunes/models/limits").mock(
        return_value=httpx.Response(404, json={"error": {"message": "model not found"}}))
    with pytest.raises(ConfigError, match="Together does not fine-tune 'acme/none'"):
        provider_on(stub).check_spec(TrainingSpec(base_model="acme/none"))


def test_unreachable_limits_fall_back_to_the_catalog_with_a_warning(stub: TogetherStub) -> None:
    stub.router.get(f"{API}/fine-tunes/models/limits").mock(return_value=httpx.Response(503, json={}))
    warnings = provider_on(stub).check_spec(SPEC)
    assert "did not answer" in warnings[0] and "recalled catalog facts" in warnings[1]
    with pytest.raises(ConfigError, match=r"lora_r: Together allows 1 to 64 .*\(catalog, as of 2026-12-04\)"):
        provider_on(stub).check_spec(SPEC.model_copy(update={"lora_r": 65}))
    with pytest.raises(ConfigError, match="not in the catalog of Together models"):
        provider_on(stub, live_limits=False).check_spec(TrainingSpec(base_model="acme/none"))


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "error"), [
    (400, PermanentProviderError), (401, PermanentProviderError), (404, PermanentProviderError),
    (408, TransientProviderError), (429, TransientProviderError), (500, TransientProviderError),
    (502, TransientProviderError), (503, TransientProviderError),
])
def test_http_errors_map_to_the_error_tree(stub: TogetherStub, status: int, error: type) -> None:
    stub.router.get(f"{API}/fine-tunes/ft-x").mock(return_value=httpx.Response(
        status, json={"error": {"message": "nope"}}, headers={"retry-after": "3"}))
    with pytest.raises(error, match="nope") as raised:
        provider_on(stub).get_job(JobRef(provider="together", job_id="ft-x"))
    assert raised.value.status_code == status
    if error is TransientProviderError:
        assert raised.value.retry_after == 3


def test_dropped_connections_and_torn_bodies_are_transient(stub: TogetherStub) -> None:
    job = JobRef(provider="together", job_id="ft-x")
    stub.router.get(f"{API}/fine-tunes/ft-x").mock(side_effect=httpx.RemoteProtocolError("peer closed"))
    with pytest.raises(TransientProviderError, match="connection failed"):
        provider_on(stub).get_job(job)
    stub.router.get(f"{API}/fine-tunes/ft-x").mock(return_value=httpx.Response(
        200, content=b'{"id": "ft-', headers={"content-type": "application/json"}))
    with pytest.raises(TransientProviderError, match="not JSON"):
        provider_on(stub).get_job(job)


# -- observing -------------------------------------------------------------------------------------

def test_a_user_error_blames_the_data_and_carries_the_last_error_event(stub: TogetherStub) -> None:
    stub.router.get(f"{API}/fine-tunes/ft-x").mock(return_value=httpx.Response(
        200, json=job_json("user_error")))
    events = [{"object": "fine-tune-event", "created_at": "t", "type": "job_error", "level": "error",
               "message": "line 3: no messages"}]
    stub.router.get(f"{API}/fine-tunes/ft-x/events").mock(return_value=httpx.Response(
        200, json={"data": events}))
    status = provider_on(stub).get_job(JobRef(provider="together", job_id="ft-x"))
    assert (status.state, status.message, status.data_at_fault) == \
        (JobState.FAILED, "line 3: no messages", True)


def test_a_restarted_job_is_followed_to_its_successor(stub: TogetherStub) -> None:
    tag = idempotency_tag("key-a1")
    old = job_json("error", id="ft-old", suffix=f"demo-{tag}")
    new = job_json("running", id="ft-new", suffix=f"demo-{tag}", created_at="2026-11-28T01:00:00Z",
                   total_steps=10)
    other = job_json("running", id="ft-other", suffix="demo-lf0000000000", created_at="2026-11-28T02:00:00Z")
    stub.router.get(f"{API}/fine-tunes/ft-old").mock(return_value=httpx.Response(200, json=old))
    stub.router.get(f"{API}/fine-tunes/ft-new").mock(return_value=httpx.Response(200, json=new))
    stub.router.get(f"{API}/fine-tunes").mock(return_value=httpx.Response(
        200, json={"data": [old, new, other]}))
    restarted = {"object": "fine-tune-event", "created_at": "t", "type": "job_restarted", "level": "warning",
                 "message": "Job restarted"}
    stub.router.get(f"{API}/fine-tunes/ft-old/events").mock(return_value=httpx.Response(
        200, json={"data": [restarted]}))

    status = provider_on(stub).get_job(JobRef(provider="together", job_id="ft-old", idempotency_key="key-a1"))

    assert status.job == JobRef(provider="together", job_id="ft-new", idempotency_key="key-a1")
    assert (status.state, status.step, status.total_steps) == (JobState.RUNNING, 2, 10)


def test_estimate_price_asks_together(stub: TogetherStub) -> None:
    estimate = provider_on(stub).estimate_price(SPEC, with_file(stub, SFT_LINE))
    assert (estimate.usd, estimate.train_tokens, estimate.allowed_to_proceed) == (1.5, 1000.0, True)


def test_the_adapter_is_downloaded_whole_or_not_at_all(stub: TogetherStub, tmp_path: Path) -> None:
    stub.router.get(f"{API}/finetune/download").mock(return_value=httpx.Response(
        200, content=b"adapter-bytes"))
    dest = provider_on(stub).download_adapter(JobRef(provider="together", job_id="ft-1"),
                                              tmp_path / "a.tar.gz")
    assert dest.read_bytes() == b"adapter-bytes"
    stub.router.get(f"{API}/finetune/download").mock(return_value=httpx.Response(500, json={}))
    with pytest.raises(TransientProviderError):
        provider_on(stub).download_adapter(JobRef(provider="together", job_id="ft-1"), tmp_path / "b.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


# -- upload ----------------------------------------------------------------------------------------

def dataset(tmp_path: Path) -> PreparedDataset:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(SFT_LINE) + "\n", encoding="utf-8")
    return PreparedDataset(train_path=path, sha256="b" * 64, train_examples=1)


def test_an_already_uploaded_file_is_reused_and_its_validation_awaited(stub: TogetherStub,
                                                                       tmp_path: Path) -> None:
    stub.files["file-9"] = b"x"
    stub.router.post(f"{API}/files").mock(return_value=httpx.Response(
        409, json={"file_id": "file-9"}, headers={"x-should-retry": "false"}))
    answers = iter(["PENDING", "RUNNING", "COMPLETED"])

    def file_state(request: httpx.Request, **_: str) -> httpx.Response:
        return httpx.Response(200, json={"id": "file-9", "object": "file", "bytes": 1, "created_at": 1,
                                         "filename": "train.jsonl", "FileType": "jsonl",
                                         "purpose": "fine-tune", "processing_status": next(answers)})

    stub.router.get(f"{API}/files/file-9").mock(side_effect=file_state)
    preprocess = stub.router.post(f"{API}/files/file-9/preprocess").mock(side_effect=file_state)

    ref = provider_on(stub).upload(dataset(tmp_path))

    assert ref.train_file_id == "file-9" and preprocess.call_count == 1


def test_an_invalid_file_is_refused_with_the_reason(stub: TogetherStub, tmp_path: Path) -> None:
    stub.router.post(url__regex=rf"{API}/files/.+/preprocess").mock(return_value=httpx.Response(200, json={
        "id": "file-1", "object": "file", "bytes": 1, "created_at": 1, "filename": "train.jsonl",
        "FileType": "jsonl", "purpose": "fine-tune", "processing_status": "INVALID_FORMAT"}))
    stub.router.get(url__regex=rf"{API}/files/[^/]+$").mock(return_value=httpx.Response(200, json={
        "id": "file-1", "object": "file", "bytes": 1, "created_at": 1, "filename": "train.jsonl",
        "FileType": "jsonl", "purpose": "fine-tune", "processing_status": "INVALID_FORMAT",
        "validation_report": {"valid": False, "error": "line 1: not conversational",
                              "error_type": "INVALID_FORMAT"}}))
    with pytest.raises(PermanentProviderError, match="INVALID_FORMAT"):
        provider_on(stub).upload(dataset(tmp_path))


def test_options_and_credentials_are_checked_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable TOGETHER_API_KEY"):
        TogetherProvider.from_options({})
    with pytest.raises(ConfigError, match="provider.options.n_eval: unknown key"):
        TogetherProvider.from_options({"n_eval": 2}, api_key="k")
    built = TogetherProvider.from_options({"n_evals": 2}, api_key="k", base_url="http://127.0.0.1:1/together")
    assert built.options.n_evals == 2 and str(built.client.base_url).startswith("http://127.0.0.1:1/together")
