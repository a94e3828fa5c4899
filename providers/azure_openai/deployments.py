"""Serving an Azure OpenAI fine-tune: a model deployment made through the Azure management REST API.

Azure answers a fine-tuned model only through a deployment of it (`PUT .../accounts/{account}/
deployments/{name}`, sku Standard, GlobalStandard or DeveloperTier). A Standard deployment bills an hourly
hosting fee from creation until it is deleted, whether used or not; a DeveloperTier one has no hosting fee,
no SLA and lives 24 hours (evaluation only). ARM's PUT creates or updates by name, so the same name is the
same deployment: a re-run finds it instead of paying for a second.
Docs: https://learn.microsoft.com/azure/foundry/openai/how-to/fine-tuning-deploy (MicrosoftDocs/azure-ai-docs,
articles/foundry/openai/how-to/fine-tuning-deploy.md, read 2026-12-04).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from providers.errors import PermanentProviderError, TransientProviderError, UnexpectedProviderResponse
from providers.hosted import retry_after
from providers.waiting import delays

NAME = "azure_openai"
ARM_SCOPE = "https://management.azure.com/.default"
# properties.provisioningState of an ARM resource: True serves, False failed, None not yet
PROVISIONING: dict[str, bool | None] = {"Accepted": None, "Creating": None, "Updating": None, "Moving": None,
                                        "Succeeded": True, "Failed": False, "Canceled": False,
                                        "Deleting": False, "Disabled": False}


def deployment_name(name: str) -> str:
    """A deployment name Azure accepts (letters, digits, '-', '_', '.'; 64 at most)."""
    cleaned = re.sub(r"[^0-9A-Za-z._-]+", "-", name).strip("-")
    if len(cleaned) <= 64:
        return cleaned
    return f"{cleaned[:51]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


class Deployments:
    """The deployments of one Azure OpenAI account, through the management API with a bearer token.

    `token` returns a Microsoft Entra ID token for the management scope (azure-identity's
    DefaultAzureCredential in production; a fixed key against the emulator). The HTTP client is injected
    so tests swap its transport."""

    def __init__(self, http: httpx2.Client, *, account_path: str, api_version: str,
                 token: Callable[[], str]) -> None:
        self.http, self.account_path, self.api_version, self.token = http, account_path, api_version, token

    def get(self, name: str) -> dict[str, Any] | None:
        """The deployment called `name`, or None when there is none."""
        response = self._send("GET", name)
        return None if response.status_code == 404 else response.json()

    def put(self, name: str, model: str, *, sku: str, capacity: int) -> dict[str, Any]:
        body = {"sku": {"name": sku, "capacity": capacity},
                "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}}}
        return self._send("PUT", name, json=body).json()

    def delete(self, name: str) -> None:
        """Delete it (what stops its hosting fee); a no-op when it is gone."""
        self._send("DELETE", name)

    def _send(self, method: str, name: str, **kwargs: Any) -> httpx2.Response:
        url = f"{self.account_path}/deployments/{name}"
        with _translated():
            response = self.http.request(method, url, params={"api-version": self.api_version},
                                         headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
            if response.status_code == 404 and method != "PUT":
                return response
            _raise_for(response)
            if method != "DELETE" and not isinstance(response.json(), dict):
                raise UnexpectedProviderResponse(NAME, f"{method} deployment {name}: not a JSON object")
        return response


def serve(deployments: Deployments, model: str, *, name: str, sku: str, capacity: int, wait_s: float,
          poll_s: float, sleep: Callable[[float], None] = time.sleep) -> str:
    """Deploy `model` under `name` (or find it deployed there) and wait until it serves; the deployment
    name, which is what inference calls. The name is the run's (made from its submission key): one that
    serves an older model of the same submission (a job made again) is moved to this one, as ARM's PUT does.
    PermanentProviderError when the deployment fails; TransientProviderError when it is not ready after
    `wait_s`."""
    found = deployments.get(name)
    if found is None or _model_of(found) != model:
        found = deployments.put(name, model, sku=sku, capacity=capacity)
    waits = delays(wait_s, poll_s, lambda: TransientProviderError(
        NAME, f"deployment {name} does not serve after {wait_s:g} s; run again to keep waiting, or delete "
              "it"))
    while not _serves(found, name):
        sleep(next(waits))
        found = deployments.get(name) or {}
    return name


def _model_of(deployment: dict[str, Any]) -> str | None:
    return ((deployment.get("properties") or {}).get("model") or {}).get("name")


def _serves(deployment: dict[str, Any], name: str) -> bool:
    state = str((deployment.get("properties") or {}).get("provisioningState"))
    if state not in PROVISIONING:
        raise UnexpectedProviderResponse(NAME, f"deployment {name} has unknown provisioningState {state!r}")
    if PROVISIONING[state] is False:
        raise PermanentProviderError(NAME, f"deployment {name} is {state}")
    return bool(PROVISIONING[state])


def _raise_for(response: httpx2.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = f"HTTP {status}: {error.get('message') or response.text[:200]}"
    if status in (408, 409, 429) or status >= 500:
        raise TransientProviderError(NAME, message, status_code=status,
                                     retry_after=retry_after(response.headers))
    raise PermanentProviderError(NAME, message, status_code=status)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except httpx2.TransportError as exc:
        raise TransientProviderError(NAME, f"management API connection failed: {exc}") from exc
    except ValueError as exc:  # a body that is not JSON
        raise UnexpectedProviderResponse(NAME, f"management API answer not understood: {exc}") from exc
