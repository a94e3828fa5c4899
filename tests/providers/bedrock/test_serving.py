"""Serving a Bedrock custom model (the explicit, billed step) on the emulator through boto3."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("boto3", reason="the bedrock extra is not installed")

import botocore.session

from emulator import EmulatorServer, Timeline
from providers.base import Decoding, ModelRef, PreparedDataset
from providers.bedrock.adapter import BedrockProvider
from providers.bedrock.serving import DEPLOYMENT_STATES, PROVISIONED_STATES, deploy, undeploy
from providers.errors import PermanentProviderError
from tests.conftest import QUICKSTART
from tests.providers.bedrock.test_contract import OPTIONS, SPEC
from tests.providers.contract import finish


def test_the_serving_tables_cover_every_status_botocore_knows() -> None:
    model = botocore.session.get_session().get_service_model("bedrock")
    assert set(DEPLOYMENT_STATES) == set(model.shape_for("CustomModelDeploymentStatus").enum)
    assert set(PROVISIONED_STATES) == set(model.shape_for("ProvisionedModelStatus").enum)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BedrockProvider, ModelRef, list]]:
    fast = Timeline(validating_s=0.02, queued_s=0.05, steps=3, step_s=0.02)
    with EmulatorServer(api_key="k", timeline=fast) as server:
        provider = BedrockProvider.from_options(OPTIONS, base_url=server.base_url_for("bedrock"), api_key="k")
        train = tmp_path_factory.mktemp("serving") / "train.jsonl"
        lines = (QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines()[:20]
        train.write_text("\n".join(lines) + "\n", encoding="utf-8")
        data = provider.upload(PreparedDataset(train_path=train, sha256="f" * 64, train_examples=20))
        model = finish(provider, provider.create_job(SPEC, data, idempotency_key="serving")).model
        *prompt, answer = json.loads(lines[0])["messages"]
        yield provider, model, [prompt, answer["content"]]


@pytest.mark.parametrize("units", [None, 1])
def test_deploy_serves_the_tuned_model_until_undeployed(tuned, units: int | None, caplog) -> None:
    provider, model, (prompt, answer) = tuned
    with caplog.at_level(logging.WARNING, logger="providers.bedrock.serving"):
        served = deploy(provider.bedrock, model, name=f"serve-{units}", model_units=units, poll_s=0.02)
    kind = "provisioned-model/" if units else "custom-model-deployment/"
    assert kind in served.model_id and served.job_id == model.job_id
    assert ("bills per hour" in caplog.text) == bool(units)
    assert deploy(provider.bedrock, model, name=f"serve-{units}", model_units=units, poll_s=0.02) == served
    assert provider.infer(served, prompt, Decoding(max_tokens=256)).text == answer
    undeploy(provider.bedrock, served.model_id)
    undeploy(provider.bedrock, served.model_id)  # gone already: a no-op
    with pytest.raises(PermanentProviderError, match="ResourceNotFoundException"):
        provider.infer(served, prompt, Decoding(max_tokens=256))
