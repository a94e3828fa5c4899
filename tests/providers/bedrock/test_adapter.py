"""The Bedrock adapter's own rules: the state tables cover botocore's enums, boto3's errors land in the
error tree, hyperparameters are checked against the family ranges before anything is sent, and the create
request carries the key as clientRequestToken (botocore Stubber: the real client, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3", reason="the bedrock extra is not installed")

import botocore.session
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.stub import ANY, Stubber

from providers.base import DatasetRef, Decoding, JobRef, JobState, ModelRef, PreparedDataset, TrainingSpec
from providers.bedrock.adapter import STATES, TRAINING_PHASES, BedrockProvider
from providers.bedrock.client import BedrockOptions, job_name, request_token
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

NOVA = "amazon.nova-lite-v1:0:300k"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"
ROLE = "arn:aws:iam::123456789012:role/BedrockFT"
JOB_ARN = f"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/{NOVA}/abcdefghijkl"
MODEL_ARN = f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{NOVA}/abcdefghijkl"


def _options(**changes: Any) -> BedrockOptions:
    return BedrockOptions(bucket="loraflow-ft", role_arn=ROLE, **changes)


def _clients() -> tuple[Any, Any, Any]:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    return tuple(session.client(name) for name in ("s3", "bedrock", "bedrock-runtime"))


@pytest.fixture
def stubbed() -> tuple[BedrockProvider, Stubber, Stubber, Stubber]:
    s3, bedrock, runtime = _clients()
    stubs = Stubber(s3), Stubber(bedrock), Stubber(runtime)
    for stub in stubs:
        stub.activate()
    return BedrockProvider(s3, bedrock, runtime, _options()), *stubs


def _job(status: str, **extra: Any) -> dict[str, Any]:
    return {"jobArn": JOB_ARN, "jobName": "lf-x", "outputModelName": "m", "roleArn": ROLE, "status": status,
            "creationTime": "2026-11-29T00:00:00Z",
            "baseModelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{NOVA}",
            "trainingDataConfig": {"s3Uri": "s3://loraflow-ft/t"}, "validationDataConfig": {"validators": []},
            "outputDataConfig": {"s3Uri": "s3://loraflow-ft/out/"}, **extra}


# -- state tables ----------------------------------------------------------------------------------

def test_the_state_tables_cover_every_status_botocore_knows() -> None:
    model = botocore.session.get_session().get_service_model("bedrock")
    assert set(STATES) == set(model.shape_for("ModelCustomizationJobStatus").enum)
    assert set(TRAINING_PHASES) == set(model.shape_for("JobStatusDetails").enum)


@pytest.mark.parametrize(("status", "training", "state"), [
    ("InProgress", "NotStarted", JobState.PENDING), ("InProgress", "InProgress", JobState.RUNNING),
    ("Stopping", "Stopping", JobState.CANCELLING), ("Stopped", "Stopped", JobState.CANCELLED),
    ("Failed", "Failed", JobState.FAILED)])
def test_status_and_sub_status_map_to_job_states(stubbed, status: str, training: str,
                                                  state: JobState) -> None:
    provider, s3, bedrock, _ = stubbed
    details = {"trainingDetails": {"status": training}}
    bedrock.add_response("get_model_customization_job", _job(status, statusDetails=details),
                         {"jobIdentifier": "lf-x"})
    if state is JobState.RUNNING:
        s3.add_client_error("get_object", "NoSuchKey", http_status_code=404)
    assert provider.get_job(JobRef(provider="bedrock", job_id="lf-x")).state is state


def test_completed_job_resolves_the_custom_model_and_final_losses(stubbed) -> None:
    provider, s3, bedrock, _ = stubbed
    bedrock.add_response("get_model_customization_job", _job(
        "Completed", outputModelArn=MODEL_ARN, trainingMetrics={"trainingLoss": 0.4},
        validationMetrics=[{"validationLoss": 0.5}]), {"jobIdentifier": "lf-x"})
    s3.add_response("get_object", {"Body": _body(b"step_number,epoch_number,training_loss,perplexity\n"
                                                 b"1,0,1.2,3.3\n7,1,0.45,1.57\n")},
                    {"Bucket": "loraflow-ft",
                     "Key": "out/model-customization-job-abcdefghijkl/training_artifacts/"
                            "step_wise_training_metrics.csv"})
    # no validation set: no validation CSV
    s3.add_client_error("get_object", "NoSuchKey", http_status_code=404)
    status = provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))
    assert status.state is JobState.SUCCEEDED and status.step == 7
    assert status.metrics == {"train_loss": 0.4, "valid_loss": 0.5}
    assert status.model == ModelRef(provider="bedrock", model_id=MODEL_ARN, base_model=NOVA, job_id="lf-x")


def test_the_training_and_validation_csvs_become_one_loss_curve(stubbed) -> None:
    provider, s3, bedrock, _ = stubbed
    bedrock.add_response("get_model_customization_job", _job("Completed", outputModelArn=MODEL_ARN),
                         {"jobIdentifier": "lf-x"})
    folder = "out/model-customization-job-abcdefghijkl"
    s3.add_response("get_object", {"Body": _body(b"step_number,epoch_number,training_loss,perplexity\n"
                                                 b"1,0,1.2,3.3\n2,0,0.9,2.46\n3,1,0.6,1.82\n")},
                    {"Bucket": "loraflow-ft",
                     "Key": f"{folder}/training_artifacts/step_wise_training_metrics.csv"})
    s3.add_response("get_object", {"Body": _body(b"step_number,epoch_number,validation_loss,perplexity\n"
                                                 b"3,1,0.7,2.01\n")},
                    {"Bucket": "loraflow-ft",
                     "Key": f"{folder}/validation_artifacts/post_fine_tuning_validation/"
                            "validation/validation_metrics.csv"})
    assert provider.loss_curve(JobRef(provider="bedrock", job_id="lf-x")) == [
        {"step": 1.0, "epoch": 0.0, "train_loss": 1.2}, {"step": 2.0, "epoch": 0.0, "train_loss": 0.9},
        {"step": 3.0, "epoch": 1.0, "train_loss": 0.6, "valid_loss": 0.7}]


def test_a_failure_in_validation_blames_the_data(stubbed) -> None:
    provider, _, bedrock, _ = stubbed
    details = {"validationDetails": {"status": "Failed"}, "trainingDetails": {"status": "NotStarted"}}
    bedrock.add_response("get_model_customization_job", _job("Failed", statusDetails=details,
                                                             failureMessage="line 3 is not valid"))
    status = provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))
    assert status.data_at_fault and status.message == "line 3 is not valid"


def test_an_unknown_status_is_unexpected(stubbed) -> None:
    provider, _, bedrock, _ = stubbed
    bedrock.add_response("get_model_customization_job", _job("Paused"))
    with pytest.raises(UnexpectedProviderResponse, match="Paused"):
        provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "http", "raised"), [
    ("ThrottlingException", 429, TransientProviderError),
    ("InternalServerException", 500, TransientProviderError),
    ("ServiceUnavailableException", 503, TransientProviderError),
    ("ValidationException", 400, PermanentProviderError),
    ("AccessDeniedException", 403, PermanentProviderError),
    ("ConflictException", 400, PermanentProviderError),
    ("ServiceQuotaExceededException", 400, PermanentProviderError),
    ("ResourceNotFoundException", 404, PermanentProviderError)])
def test_service_errors_map_to_the_error_tree(stubbed, code: str, http: int, raised: type) -> None:
    provider, _, bedrock, _ = stubbed
    bedrock.add_client_error("get_model_customization_job", code, "said the service", http_status_code=http)
    with pytest.raises(raised, match=code) as caught:
        provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))
    assert caught.value.status_code == http


class _Raising:
    """A scripted client whose every call raises the given exception."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            raise self.error
        return call


@pytest.mark.parametrize(("error", "raised"), [
    (EndpointConnectionError(endpoint_url="http://x"), TransientProviderError),
    (ConnectionClosedError(endpoint_url="http://x"), TransientProviderError),
    (ReadTimeoutError(endpoint_url="http://x"), TransientProviderError),
    (NoCredentialsError(), ConfigError)])
def test_transport_and_credential_errors_map_to_the_error_tree(error: Exception, raised: type) -> None:
    client = _Raising(error)
    provider = BedrockProvider(client, client, client, _options())
    with pytest.raises(raised):
        provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))


def test_a_body_without_a_status_is_transient(stubbed) -> None:
    provider, _, bedrock, _ = stubbed
    bedrock.add_response("get_model_customization_job",
                         {k: v for k, v in _job("Completed").items() if k != "status"})
    with pytest.raises(TransientProviderError, match="torn"):
        provider.get_job(JobRef(provider="bedrock", job_id="lf-x"))


# -- hyperparameters -------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "options", "words"), [
    ({"base_model": NOVA, "epochs": 6}, {}, "training.epochs: Bedrock allows whole numbers 1 to 5"),
    ({"base_model": NOVA, "learning_rate": 0.01}, {},
     "training.learning_rate: Bedrock allows 1e-06 to 0.0001"),
    ({"base_model": NOVA, "batch_size": 8}, {},
     "training.batch_size: Bedrock exposes no such setting for the nova"),
    ({"base_model": NOVA, "lora_r": 16}, {}, "training.lora_r: Bedrock exposes no LoRA rank"),
    ({"base_model": NOVA}, {"warmup_steps": 101},
     "provider.options.warmup_steps: Bedrock allows whole numbers 0 to 100"),
    ({"base_model": LLAMA, "batch_size": 2}, {}, "training.batch_size: Bedrock allows whole numbers 1 to 1"),
    ({"base_model": LLAMA}, {"warmup_steps": 5},
     "provider.options.warmup_steps: Bedrock exposes no such setting"),
    ({"base_model": "anthropic.claude-3-haiku-20240307-v1:0:200k"}, {}, "end of life on 2026-09-10"),
    ({"base_model": "amazon.titan-text-express-v1"}, {}, "allowed values: amazon.nova-micro-v1*"),
])
def test_check_spec_names_the_knob_and_the_allowed_values(spec: dict, options: dict, words: str) -> None:
    s3, bedrock, runtime = _clients()
    provider = BedrockProvider(s3, bedrock, runtime, _options(**options))
    with pytest.raises(ConfigError, match=words.replace("*", r"\*").replace("(", r"\(")):
        provider.check_spec(TrainingSpec(**spec))


def test_check_spec_warns_about_what_bedrock_ignores_or_cannot_price() -> None:
    provider = BedrockProvider(*_clients(), _options(region="us-west-2", serving={"arn:x": "arn:y"}))
    warnings = provider.check_spec(TrainingSpec(base_model=LLAMA, epochs=3, seed=7))
    assert any("no seed" in w for w in warnings) and any("no price" in w for w in warnings)
    assert provider.check_spec(TrainingSpec(base_model=LLAMA)) == [(f"the catalog has no price for {LLAMA}; "
                                                                   "the cost estimate leaves it out")]
    nova2 = provider.check_spec(TrainingSpec(base_model="amazon.nova-2-lite-v1:0:256k"))
    assert any("takes no validation set" in w for w in nova2) and any("us-east-1" in w for w in nova2)


def test_check_spec_settles_how_the_tuned_model_will_be_served_before_anything_is_paid() -> None:
    def check(base: str, **options: Any) -> list[str]:
        return BedrockProvider(*_clients(), _options(region="us-west-2", **options)).check_spec(
            TrainingSpec(base_model=base))

    assert not any("provisioned" in w for w in check(NOVA))  # Nova: an on-demand deployment, per token
    with pytest.raises(ConfigError,
                       match="serve_with: Bedrock serves llama custom models only through provisioned"):
        check(LLAMA)
    with pytest.raises(ConfigError,
                       match="on-demand deployment is not offered for llama.*provisioned_throughput"):
        check(LLAMA, serve_with="deployment")
    with pytest.raises(ConfigError, match="model_units"):
        check(LLAMA, serve_with="provisioned_throughput")
    warnings = check(LLAMA, serve_with="provisioned_throughput", model_units=1)
    assert any("billed per hour" in w and "deletes it" in w for w in warnings)


def test_create_sends_string_hyperparameters_and_the_key_as_client_token(stubbed) -> None:
    provider, _, bedrock, _ = stubbed
    key = "0123abcd-a1"
    data = DatasetRef(provider="bedrock", train_file_id="s3://loraflow-ft/d/train", sha256="a" * 64,
                      validation_file_id="s3://loraflow-ft/d/validation")
    bedrock.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, {
        "jobName": job_name(key), "customModelName": ANY, "roleArn": ROLE, "baseModelIdentifier": NOVA,
        "customizationType": "FINE_TUNING", "clientRequestToken": key,
        "trainingDataConfig": {"s3Uri": "s3://loraflow-ft/d/train-converse.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://loraflow-ft/d/validation-converse.jsonl"}]},
        "outputDataConfig": {"s3Uri": f"s3://loraflow-ft/loraflow/output/{job_name(key)}/"},
        "hyperParameters": {"epochCount": "2", "learningRate": "1e-05"}})
    spec = TrainingSpec(base_model=NOVA, epochs=2, learning_rate=1e-5, suffix="my.run")
    assert provider.create_job(spec, data, idempotency_key=key) == JobRef(provider="bedrock",
                                                                          job_id=job_name(key),
                                                                          idempotency_key=key)
    bedrock.assert_no_pending_responses()


def test_request_tokens_follow_bedrocks_pattern() -> None:
    assert request_token("contract-run") == "contract-run"
    assert len(request_token("a key with spaces")) == 64 and request_token("x_y") != "x_y"


def test_upload_writes_both_text_formats_per_split(stubbed, tmp_path: Path) -> None:
    provider, s3, _, _ = stubbed
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "system", "content": "Be brief."}, '
                     '{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}\n',
                     encoding="utf-8")
    converse = (b'{"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "Be brief."}], '
                b'"messages": [{"role": "user", "content": [{"text": "Hi"}]}, '
                b'{"role": "assistant", "content": [{"text": "Hello."}]}]}\n')
    for name, body in (("converse", converse), ("prompt_completion", (b'{"prompt": "Be brief.\\n\\nHi", '
                                                                   b'"completion": "Hello."}\n'))):
        s3.add_response("put_object", {}, {"Bucket": "loraflow-ft",
                                           "Key": f"loraflow/datasets/{'b' * 16}/train-{name}.jsonl",
                                           "Body": body, "ContentType": "application/jsonl"})
    ref = provider.upload(PreparedDataset(train_path=train, sha256="b" * 64, train_examples=1))
    assert ref.train_file_id == f"s3://loraflow-ft/loraflow/datasets/{'b' * 16}/train" and \
        ref.validation_file_id is None
    s3.assert_no_pending_responses()


def test_infer_sends_converse_and_uses_the_serving_arn(stubbed) -> None:
    provider, _, _, runtime = stubbed
    provider.options = _options(
        serving={MODEL_ARN: "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/p1"})
    runtime.add_response("converse", {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello."}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6}, "metrics": {"latencyMs": 3}}, {
        "modelId": "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/p1",
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 8, "temperature": 0.0, "topP": 1.0}})
    completion = provider.infer(ModelRef(provider="bedrock", model_id=MODEL_ARN, base_model=NOVA,
                                         job_id="lf-x"),
                                [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Hi"}],
                                Decoding(max_tokens=8))
    assert (completion.text, completion.finish_reason, completion.prompt_tokens) == ("Hello.", "length", 5)
    assert completion.model_id == MODEL_ARN


def test_options_refuse_unknown_keys_and_name_them() -> None:
    with pytest.raises(ConfigError, match="provider.options.bucket: required key is missing"):
        BedrockProvider.from_options({"role_arn": ROLE})
    with pytest.raises(ConfigError, match="provider.options.colour: unknown key"):
        BedrockProvider.from_options({"bucket": "loraflow-ft", "role_arn": ROLE, "colour": "red"})


def _body(content: bytes) -> Any:
    from io import BytesIO

    from botocore.response import StreamingBody

    return StreamingBody(BytesIO(content), len(content))
