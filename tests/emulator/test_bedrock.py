"""The emulator's Bedrock API through plain boto3 clients: what the service checks at create, how a
job looks over its life, idempotent creates, signing, and state that survives a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="the bedrock extra is not installed")

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from emulator import EmulatorServer, Timeline

ROLE = "arn:aws:iam::123456789012:role/BedrockFT"
NOVA = "amazon.nova-micro-v1:0:128k"
LINE = (b'{"schemaVersion": "bedrock-conversation-2024", "messages": '
        b'[{"role": "user", "content": [{"text": "Hi"}]}, '
        b'{"role": "assistant", "content": [{"text": "Hello."}]}]}\n')
FAST = Timeline(validating_s=0.05, queued_s=0.05, steps=4, step_s=0.05)


def _clients(server: EmulatorServer, key: str = "k") -> dict[str, Any]:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=key)
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, s3={"addressing_style": "path"})
    return {name: session.client(name, endpoint_url=server.base_url_for("bedrock"), config=config)
            for name in ("s3", "bedrock", "bedrock-runtime")}


def _create(bedrock: Any, name: str, **changes: Any) -> str:
    request = {"jobName": name, "customModelName": f"{name}-model", "roleArn": ROLE,
               "baseModelIdentifier": NOVA, "trainingDataConfig": {"s3Uri": "s3://b1/train.jsonl"},
               "outputDataConfig": {"s3Uri": "s3://b1/out/"},
               "hyperParameters": {"epochCount": "2"}, "clientRequestToken": f"{name}-token", **changes}
    return bedrock.create_model_customization_job(**request)["jobArn"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(state_dir=tmp_path / "state", api_key="k", timeline=FAST) as running:
        _clients(running)["s3"].put_object(Bucket="b1", Key="train.jsonl", Body=LINE)
        yield running


def test_a_job_lives_through_its_sub_statuses_and_ends_with_a_custom_model(server: EmulatorServer) -> None:
    bedrock, s3 = _clients(server)["bedrock"], _clients(server)["s3"]
    arn = _create(bedrock, "job-a")
    assert arn.startswith(f"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/{NOVA}/")
    first = bedrock.get_model_customization_job(jobIdentifier=arn)  # an ARN works as well as the name
    assert first["status"] == "InProgress"
    assert first["statusDetails"]["trainingDetails"]["status"] == "NotStarted"
    time.sleep(0.5)
    done = bedrock.get_model_customization_job(jobIdentifier="job-a")
    assert done["status"] == "Completed" and done["trainingMetrics"]["trainingLoss"] > 0
    model = bedrock.get_custom_model(modelIdentifier=done["outputModelArn"])
    assert model["modelStatus"] == "Active" and model["jobName"] == "job-a"
    key = (f"out/model-customization-job-{arn.rsplit('/', 1)[-1]}"
           "/training_artifacts/step_wise_training_metrics.csv")
    rows = s3.get_object(Bucket="b1", Key=key)["Body"].read().decode().splitlines()
    assert rows[0] == "step_number,epoch_number,training_loss,perplexity" and len(rows) == 5
    summaries = bedrock.list_model_customization_jobs(nameContains="job-")["modelCustomizationJobSummaries"]
    assert [s["jobName"] for s in summaries] == ["job-a"]


def test_a_job_with_a_validation_set_writes_its_validation_csv_when_it_completes(
        server: EmulatorServer) -> None:
    clients = _clients(server)
    clients["s3"].put_object(Bucket="b1", Key="valid.jsonl", Body=LINE)
    arn = _create(clients["bedrock"], "job-v", validationDataConfig={"validators": [{"s3Uri": "s3://b1/valid.jsonl"}]})
    key = (f"out/model-customization-job-{arn.rsplit('/', 1)[-1]}/validation_artifacts/"
           "post_fine_tuning_validation/validation/validation_metrics.csv")
    with pytest.raises(ClientError, match="NoSuchKey"):
        clients["s3"].get_object(Bucket="b1", Key=key)
    time.sleep(0.5)
    done = clients["bedrock"].get_model_customization_job(jobIdentifier="job-v")
    header, row = clients["s3"].get_object(Bucket="b1", Key=key)["Body"].read().decode().splitlines()
    assert header == "step_number,epoch_number,validation_loss,perplexity"
    assert float(row.split(",")[2]) == done["validationMetrics"][0]["validationLoss"]


def test_a_repeated_token_returns_the_same_job_and_a_reused_name_conflicts(server: EmulatorServer) -> None:
    bedrock = _clients(server)["bedrock"]
    arn = _create(bedrock, "job-b")
    assert _create(bedrock, "job-b") == arn
    with pytest.raises(ClientError, match="ConflictException"):
        _create(bedrock, "job-b", clientRequestToken="another-token")
    assert server.state.counters["jobs_created"] == 1


@pytest.mark.parametrize(("changes", "code", "words"), [
    ({"hyperParameters": {"epochCount": "9"}}, "ValidationException", "epochCount=9 is out of range"),
    ({"hyperParameters": {"batchSize": "8"}}, "ValidationException", "batchSize is not supported"),
    ({"trainingDataConfig": {"s3Uri": "s3://b1/missing.jsonl"}}, "ValidationException", "Cannot access"),
    ({"baseModelIdentifier": "anthropic.claude-3-haiku-20240307-v1:0:200k"}, "ResourceNotFoundException",
     "end of its life"),
    ({"baseModelIdentifier": "amazon.titan-text-lite-v1"}, "ValidationException",
     "model identifier is invalid"),
])
def test_create_refuses_what_bedrock_refuses(server: EmulatorServer, changes: dict, code: str,
                                             words: str) -> None:
    with pytest.raises(ClientError, match=code) as raised:
        _create(_clients(server)["bedrock"], "job-c", **changes)
    assert words in raised.value.response["Error"]["Message"]


def test_stop_reports_stopping_then_stopped_and_refuses_a_second_stop(server: EmulatorServer) -> None:
    bedrock = _clients(server)["bedrock"]
    _create(bedrock, "job-d")
    bedrock.stop_model_customization_job(jobIdentifier="job-d")
    assert bedrock.get_model_customization_job(jobIdentifier="job-d")["status"] == "Stopping"
    time.sleep(0.15)
    assert bedrock.get_model_customization_job(jobIdentifier="job-d")["status"] == "Stopped"
    with pytest.raises(ClientError, match="ValidationException"):
        bedrock.stop_model_customization_job(jobIdentifier="job-d")


def test_requests_signed_with_another_key_are_refused(server: EmulatorServer) -> None:
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        _clients(server, key="other")["bedrock"].list_model_customization_jobs()


def test_jobs_and_objects_survive_a_restart(server: EmulatorServer, tmp_path: Path) -> None:
    _create(_clients(server)["bedrock"], "job-e")
    server.stop()
    with EmulatorServer(state_dir=tmp_path / "state", api_key="k", timeline=FAST) as again:
        clients = _clients(again)
        assert clients["bedrock"].get_model_customization_job(jobIdentifier="job-e")["jobName"] == "job-e"
        assert clients["s3"].get_object(Bucket="b1", Key="train.jsonl")["Body"].read() == LINE


def test_converse_answers_a_base_model_and_no_custom_model_by_its_own_arn(server: EmulatorServer) -> None:
    clients = _clients(server)
    runtime, hello = clients["bedrock-runtime"], [{"role": "user", "content": [{"text": "Hi"}]}]
    answer = runtime.converse(modelId=NOVA, messages=hello, inferenceConfig={"maxTokens": 3})
    assert answer["stopReason"] in ("end_turn", "max_tokens") and answer["usage"]["outputTokens"] <= 3
    _create(clients["bedrock"], "job-c")
    time.sleep(0.5)
    custom = clients["bedrock"].get_model_customization_job(jobIdentifier="job-c")["outputModelArn"]
    with pytest.raises(ClientError, match="ValidationException.*on-demand throughput isn't supported"):
        runtime.converse(modelId=custom, messages=hello)
