"""Azure OpenAI adapter details: its options and sign-in, Azure's service dates, the state table, and the
deployment (management REST API) at the transport level (httpx2.MockTransport)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from datetime import date

import httpx2
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from providers import get_provider
from providers.azure_openai import deployments as arm
from providers.azure_openai.adapter import AZURE_STATES, AzureOpenAIOptions, AzureOpenAIProvider
from providers.base import Decoding, ModelRef, TrainingSpec
from providers.errors import ConfigError, PermanentProviderError, TransientProviderError
from providers.openai.adapter import OpenAIProvider

SPEC = TrainingSpec(base_model="gpt-4o-mini-2024-07-18", epochs=1, suffix="unit")
TUNED = ModelRef(provider="azure_openai", model_id="gpt-4o-mini-2024-07-18.ft-abc",
                 base_model="gpt-4o-mini-2024-07-18", job_id="ftjob-1")
ENDPOINT, VERSION = "https://res.openai.azure.com", "2025-04-01-preview"
ACCOUNT = ("https://management.azure.com/subscriptions/s/resourceGroups/g/providers/"
           "Microsoft.CognitiveServices/accounts/res")


def deployments(handler: Callable[[httpx2.Request], httpx2.Response]) -> arm.Deployments:
    return arm.Deployments(httpx2.Client(transport=httpx2.MockTransport(handler)), account_path=ACCOUNT,
                           api_version="2025-07-01-preview", token=lambda: "entra-token")


def provider_with(deps: arm.Deployments | None, **options: object) -> AzureOpenAIProvider:
    client = openai.AzureOpenAI(azure_endpoint=ENDPOINT, api_version=VERSION, api_key="k", max_retries=0)
    return AzureOpenAIProvider(client, AzureOpenAIOptions(**options), deps, today=lambda: date(2026, 12, 4))


def test_it_is_the_openai_adapter_with_azures_states() -> None:
    assert issubclass(AzureOpenAIProvider, OpenAIProvider)
    sdk = set(typing.get_args(FineTuningJob.model_fields["status"].annotation))
    assert sdk <= set(AZURE_STATES) and {"pending", "pausing", "resuming"} <= set(AZURE_STATES)


def test_options_endpoint_and_key_are_checked_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="provider.options.endpoint"):
        get_provider("azure_openai", {})
    with pytest.raises(ConfigError, match="provider.options.deployment_sku"):
        get_provider("azure_openai", {"endpoint": "https://res.openai.azure.com", "deployment_sku": "gold"})
    with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
        get_provider("azure_openai", {"endpoint": "https://res.openai.azure.com", "auth": "api_key"})
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    keyed = get_provider("azure_openai", {"endpoint": "https://res.openai.azure.com", "auth": "api_key"})
    assert keyed.client.base_url.host == "res.openai.azure.com" and keyed.deployments is None
    with pytest.raises(ConfigError, match="subscription_id and resource_group"):
        keyed.check_spec(SPEC)  # no way to deploy the candidate: refused before anything is paid


def test_entra_id_signs_in_both_planes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    scopes = []

    class Credential:
        def get_token(self, *wanted: str) -> typing.Any:
            scopes.extend(wanted)
            return type("Token", (), {"token": "t", "expires_on": 2**40})()

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", Credential)
    provider = get_provider("azure_openai", {"endpoint": "https://res.openai.azure.com", "auth": "entra_id",
                                             "subscription_id": "s", "resource_group": "g"})
    assert provider.deployments.account_path == ACCOUNT and provider.deployments.token() == "t"
    assert provider.client._azure_ad_token_provider() == "t"
    assert scopes == [arm.ARM_SCOPE, "https://cognitiveservices.azure.com/.default"]


def test_azures_dates_not_openais() -> None:
    provider = provider_with(deployments(lambda r: httpx2.Response(404)))
    warnings = provider.check_spec(SPEC)
    assert "Azure OpenAI takes no new fine-tuning jobs after 2027-04-01 (118 days from now)" in warnings
    assert any("shut down on 2027-10-01" in w for w in warnings)
    assert any("hourly hosting fee" in w for w in warnings)
    developer = provider_with(deployments(lambda r: httpx2.Response(404)), deployment_sku="developertier")
    assert any("24 hours" in w for w in developer.check_spec(SPEC))


def test_serve_puts_a_deployment_named_for_the_run_and_waits_for_it() -> None:
    seen, states = [], iter(["Creating", "Succeeded"])

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.url.path.rsplit("/", 1)[-1], request.url.params["api-version"],
                     request.headers["authorization"]))
        if request.method == "GET" and len(seen) == 1:
            return httpx2.Response(404, json={"error": {"code": "DeploymentNotFound", "message": "none"}})
        if request.method == "PUT":
            assert json.loads(request.content) == {
                "sku": {"name": "standard", "capacity": 1},
                "properties": {"model": {"format": "OpenAI", "name": TUNED.model_id, "version": "1"}}}
        return httpx2.Response(201 if request.method == "PUT" else 200, json={
            "name": "d",
            "properties": {"model": {"name": TUNED.model_id}, "provisioningState": next(states)}})

    provider = provider_with(deployments(handler), serve_poll_s=0.01)
    served = provider.serve(TUNED, name="loraflow-0123abcd")
    assert served.model_id == "loraflow-0123abcd" and served.job_id == TUNED.job_id
    assert [s[:2] for s in seen] == [("GET", "loraflow-0123abcd"), ("PUT", "loraflow-0123abcd"),
                                     ("GET", "loraflow-0123abcd")]
    assert {s[2:] for s in seen} == {("2025-07-01-preview", "Bearer entra-token")}


@pytest.mark.parametrize(("status", "error"), [(429, TransientProviderError), (503, TransientProviderError),
                                               (403, PermanentProviderError), (400, PermanentProviderError)])
def test_management_errors_map_to_the_error_tree(status: int, error: type) -> None:
    provider = provider_with(deployments(lambda r: httpx2.Response(status, json={
        "error": {"code": "X", "message": "refused by ARM"}})))
    with pytest.raises(error, match="refused by ARM"):
        provider.serve(TUNED, name="loraflow-x")


def test_a_failed_deployment_is_permanent_and_unserve_deletes_only_its_own() -> None:
    failed = provider_with(deployments(lambda r: httpx2.Response(200, json={
        "properties": {"model": {"name": TUNED.model_id}, "provisioningState": "Failed"}})))
    with pytest.raises(PermanentProviderError, match="is Failed"):
        failed.serve(TUNED, name="loraflow-x")
    deleted = []
    provider = provider_with(deployments(lambda r: deleted.append(r.url.path) or httpx2.Response(204)))
    provider.unserve(TUNED.model_copy(update={"model_id": "loraflow-x"}))
    provider.unserve(TUNED.model_copy(update={"model_id": "someone-elses"}))
    assert [p.rsplit("/", 1)[-1] for p in deleted] == ["loraflow-x"]


def test_base_models_answer_through_their_deployment() -> None:
    asked = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        asked.append(request.url.path)
        return httpx2.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi"}}]})

    client = openai.AzureOpenAI(azure_endpoint=ENDPOINT, api_version=VERSION, api_key="k", max_retries=0,
                                http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    provider = AzureOpenAIProvider(client, AzureOpenAIOptions(
        base_deployments={"gpt-4o-mini-2024-07-18": "mini-prod"}), None)
    base = ModelRef(provider="azure_openai", model_id="gpt-4o-mini-2024-07-18",
                    base_model="gpt-4o-mini-2024-07-18")
    provider.infer(base, [{"role": "user", "content": "x"}], Decoding())
    provider.infer(TUNED.model_copy(update={"model_id": "loraflow-x"}), [{"role": "user", "content": "x"}],
                   Decoding())
    assert asked == ["/openai/deployments/mini-prod/chat/completions",
                     "/openai/deployments/loraflow-x/chat/completions"]


def test_deployment_names_fit_azures_rules() -> None:
    assert arm.deployment_name("loraflow-ab/cd ef") == "loraflow-ab-cd-ef"
    long = arm.deployment_name("x" * 100)
    assert len(long) == 64 and long != arm.deployment_name("x" * 99)
