"""Azure OpenAI fine-tuning through the `openai` SDK's AzureOpenAI client, and serving through a deployment.

Azure OpenAI speaks OpenAI's files and fine_tuning.jobs API under `{endpoint}/openai/...?api-version=`, so
this adapter *is* the OpenAI adapter (upload, create with the metadata key, find, poll, cancel, loss curve,
chat completions; subclassed, not copied) with Azure's differences on top:
- the client: `AzureOpenAI(azure_endpoint, api_version)` with an API key (`api-key` header, from
  AZURE_OPENAI_API_KEY) or Microsoft Entra ID (azure-identity's DefaultAzureCredential, when installed);
- serving: a fine-tuned model answers only through a deployment (`ServesModels`), made with the management
  REST API (deployments.py) and named after the submission key; base models answer through the deployment
  named in `base_deployments` (by default one named like the model);
- service dates: Azure's, not OpenAI's (catalog.yaml): fine-tuning of gpt-4o and gpt-4.1 goes on for
  existing customers until at least April 2027, deployments of fine-tunes until October 2027.
Docs: https://learn.microsoft.com/azure/foundry/openai/how-to/fine-tuning (MicrosoftDocs/azure-ai-docs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import httpx2
import openai
from pydantic import BaseModel, Field, ValidationError

from providers.azure_openai import deployments as arm
from providers.base import Completion, Decoding, JobState, Message, ModelRef, TrainingSpec
from providers.errors import ConfigError
from providers.openai.adapter import STATES, OpenAIOptions, OpenAIProvider

NAME = arm.NAME
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the emulator: its management API and key are its own
# Azure's job statuses beyond OpenAI's (the service names them in its REST reference)
AZURE_STATES: dict[str, JobState] = {**STATES, "pending": JobState.PENDING, "pausing": JobState.RUNNING,
                                     "resuming": JobState.PAUSED}


class AzureOpenAIOptions(OpenAIOptions):
    api_key_env: str = Field(default="AZURE_OPENAI_API_KEY",
                             description="environment variable holding the API key (auth: api_key)")
    endpoint: str | None = Field(default=None, description="https://<resource>.openai.azure.com")
    api_version: str = Field(default="2025-04-01-preview", description="the data-plane api-version")
    auth: Literal["auto", "api_key", "entra_id"] = Field(
        default="auto", description="auto: the API key when its variable is set, else Entra ID")
    subscription_id: str | None = Field(default=None, description="the account's subscription (serving)")
    resource_group: str | None = Field(default=None, description="the account's resource group (serving)")
    account: str | None = Field(default=None, description="the Azure OpenAI resource name (default: the "
                                                          "endpoint's first label)")
    deployment_sku: Literal["standard", "globalstandard", "developertier"] = Field(
        default="standard", description="standard bills a hosting fee per hour; developertier has none "
                                        "but lives 24 h and has no SLA (evaluation only)")
    deployment_capacity: int = Field(default=1, ge=1)
    management_endpoint: str = "https://management.azure.com"
    management_api_version: str = "2025-07-01-preview"
    base_deployments: dict[str, str] = Field(
        default_factory=dict, description="base model -> the deployment that serves it (default: its name)")
    serve_wait_s: float = Field(default=3600, gt=0)
    serve_poll_s: float = Field(default=15, gt=0)


class AzureOpenAIProvider(OpenAIProvider):
    name: ClassVar[str] = NAME
    Options: ClassVar[type[BaseModel]] = AzureOpenAIOptions
    vendor: ClassVar[str] = "Azure OpenAI"
    vendor_hosts: ClassVar[tuple[str, ...]] = (".openai.azure.com", ".cognitiveservices.azure.com")
    states: ClassVar[dict[str, JobState]] = AZURE_STATES

    def __init__(self, client: openai.AzureOpenAI, options: AzureOpenAIOptions,
                 deployments: arm.Deployments | None, **kwargs: Any) -> None:
        super().__init__(client, options, **kwargs)
        self.options: AzureOpenAIOptions = options
        self.deployments = deployments

    @classmethod
    def from_options(cls, options: dict, *, base_url: str | None = None, api_key: str | None = None
                     ) -> AzureOpenAIProvider:
        """`base_url` stands for the resource endpoint; on loopback (the emulator) the management API is
        below it and the emulator's key signs both."""
        try:
            opts = AzureOpenAIOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, where="azure_openai provider",
                                              prefix="provider.options") from exc
        endpoint = base_url or opts.endpoint
        if not endpoint:
            raise ConfigError("provider.options.endpoint: set the Azure OpenAI resource endpoint "
                              "(https://<resource>.openai.azure.com), or use provider.endpoint: emulator")
        emulated = base_url is not None and str(httpx2.URL(base_url).host) in _LOOPBACK
        if emulated:  # the emulator's management API sits below it; fixed names stand for the account
            opts = opts.model_copy(update={
                "management_endpoint": f"{base_url.rstrip('/')}/management",
                "subscription_id": opts.subscription_id or "emulator",
                "resource_group": opts.resource_group or "loraflow", "account": opts.account or "emulator"})
        auth = _auth(opts, api_key, emulated=emulated)
        client = openai.AzureOpenAI(azure_endpoint=endpoint, api_version=opts.api_version,
                                    max_retries=opts.max_retries, timeout=opts.timeout_s, **auth.data_plane)
        return cls(client, opts, _deployments(opts, endpoint, auth.management))

    # -- before anything is uploaded -------------------------------------------------------------

    def check_spec(self, spec: TrainingSpec) -> list[str]:
        """OpenAI's checks against Azure's catalog and dates; serving must be possible before anything is
        paid for, and a Standard deployment's hourly fee is said up front."""
        warnings = super().check_spec(spec)
        if self.deployments is None:
            raise ConfigError("provider.options.subscription_id: Azure OpenAI answers a fine-tuned model "
                              "only through a deployment, made with the management API; set "
                              "subscription_id and resource_group (and account when it is not the "
                              "endpoint's first label)")
        if self.options.deployment_sku == "developertier":
            warnings.append("the candidate is deployed on the Developer tier: no hosting fee, no SLA, "
                            "deleted by Azure after 24 hours (redeploy it as Standard to keep it)")
        else:
            warnings.append(f"the candidate is deployed as {self.options.deployment_sku}: an hourly hosting "
                            "fee from deployment until it is deleted (deleted unless the candidate is "
                            "accepted)")
        return warnings

    # -- serving (providers.base.ServesModels) ---------------------------------------------------

    def serve(self, model: ModelRef, *, name: str) -> ModelRef:
        served = arm.serve(self._deployments(), model.model_id, name=arm.deployment_name(name),
                           sku=self.options.deployment_sku, capacity=self.options.deployment_capacity,
                           wait_s=self.options.serve_wait_s, poll_s=self.options.serve_poll_s)
        return model.model_copy(update={"model_id": served})

    def unserve(self, served: ModelRef) -> None:
        if served.model_id.startswith("loraflow-"):  # only what serve() made
            self._deployments().delete(served.model_id)

    def _deployments(self) -> arm.Deployments:
        if self.deployments is None:
            raise ConfigError("provider.options.subscription_id: needed to deploy the fine-tuned model")
        return self.deployments

    # -- inference -------------------------------------------------------------------------------

    def infer(self, model: ModelRef, messages: list[Message], params: Decoding) -> Completion:
        """Through a deployment: a served candidate by its deployment name, a base model by the one
        `base_deployments` names (its own name by default)."""
        if not model.is_tuned:
            deployment = self.options.base_deployments.get(model.model_id, model.model_id)
            model = model.model_copy(update={"model_id": deployment})
        return super().infer(model, messages, params)


class _Auth:
    def __init__(self, data_plane: dict[str, Any], management: Callable[[], str] | None) -> None:
        self.data_plane, self.management = data_plane, management


def _auth(opts: AzureOpenAIOptions, api_key: str | None, *, emulated: bool) -> _Auth:
    """The data-plane credentials (an API key or an Entra ID token provider) and the management-plane token
    (Entra ID only at Azure; the emulator takes its key for both)."""
    if api_key and emulated:
        return _Auth({"api_key": api_key}, lambda: api_key)
    key = api_key or (os.environ.get(opts.api_key_env) if opts.auth != "entra_id" else None)
    if key:  # the data plane by key; serving still signs in with Entra ID where azure-identity is installed
        return _Auth({"api_key": key}, _token_of(_credential(required=False), arm.ARM_SCOPE))
    if opts.auth == "api_key":
        raise ConfigError(f"azure_openai provider: set the environment variable {opts.api_key_env} "
                          "(provider.options.api_key_env names it), or use provider.endpoint: emulator")
    credential = _credential()
    from azure.identity import get_bearer_token_provider

    return _Auth({"azure_ad_token_provider": get_bearer_token_provider(credential, ENTRA_SCOPE)},
                 _token_of(credential, arm.ARM_SCOPE))


def _credential(required: bool = True) -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ModuleNotFoundError as exc:
        if not required:
            return None
        raise ConfigError("azure_openai provider: no API key in the environment, and Entra ID sign-in needs "
                          "azure-identity: pip install 'loraflow[azure_openai]'") from exc
    return DefaultAzureCredential()


def _token_of(credential: Any, scope: str) -> Callable[[], str] | None:
    if credential is None:
        return None
    return lambda: credential.get_token(scope).token


def _deployments(opts: AzureOpenAIOptions, endpoint: str, token: Callable[[], str] | None
                 ) -> arm.Deployments | None:
    """The account's deployments, or None when serving cannot be set up (check_spec says what is missing)."""
    if token is None or not opts.subscription_id or not opts.resource_group:
        return None
    account = opts.account or str(httpx2.URL(endpoint).host).split(".")[0]
    path = (f"{opts.management_endpoint.rstrip('/')}/subscriptions/{opts.subscription_id}/resourceGroups/"
            f"{opts.resource_group}/providers/Microsoft.CognitiveServices/accounts/{account}")
    return arm.Deployments(httpx2.Client(timeout=opts.timeout_s), account_path=path,
                           api_version=opts.management_api_version, token=token)
