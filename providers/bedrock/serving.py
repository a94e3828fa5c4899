"""Serving a Bedrock custom model: the explicit, billed step between a finished job and inference.

Bedrock does not run a custom model by its ARN. Nova custom models take an on-demand custom-model
deployment (billed per token); the others need provisioned throughput, billed per model unit per hour
from creation until it is deleted, whether used or not. `deploy` creates one, waits until it serves and
returns the ModelRef to infer with (its id is the serving ARN); `undeploy` deletes it. The pipeline never
calls either on its own.
Docs: https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-use.html
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from providers.base import ModelRef
from providers.bedrock.client import NAME, request_token, translated
from providers.errors import (
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)
from providers.waiting import delays

# CustomModelDeploymentStatus and ProvisionedModelStatus in botocore's service model:
# True serves, False failed, None not yet
DEPLOYMENT_STATES: dict[str, bool | None] = {"Creating": None, "Active": True, "Failed": False}
PROVISIONED_STATES: dict[str, bool | None] = {"Creating": None, "Updating": None, "InService": True,
                                              "Failed": False}

log = logging.getLogger(__name__)


def deploy(client: Any, model: ModelRef, *, name: str, model_units: int | None = None,
           wait_s: float = 3600, poll_s: float = 15, sleep: Callable[[float], None] = time.sleep) -> ModelRef:
    """Serve a tuned model on `client` (boto3 `bedrock`) and return the ModelRef to infer with; idempotent for
    the same `name`.

    Without `model_units`: an on-demand custom-model deployment (Nova). With them: provisioned throughput
    without commitment, which bills every hour until `undeploy`. PermanentProviderError when the service
    refuses or the serving fails; TransientProviderError when it is not ready after `wait_s`.
    """
    name = serving_name(name)
    token = request_token(f"serve-{name}")
    with translated():
        if model_units is None:
            arn = client.create_custom_model_deployment(
                modelDeploymentName=name, modelArn=model.model_id,
                clientRequestToken=token)["customModelDeploymentArn"]
        else:
            log.warning("provisioned throughput %s (%d model units) bills per hour until undeploy() "
                        "deletes it", name, model_units)
            arn = client.create_provisioned_model_throughput(
                modelUnits=model_units, provisionedModelName=name, modelId=model.model_id,
                clientRequestToken=token)["provisionedModelArn"]
    waits = delays(wait_s, poll_s, lambda: TransientProviderError(
        NAME, f"{arn} does not serve after {wait_s:g} s; call deploy again to keep waiting, or undeploy it"))
    while not _serves(client, arn):
        sleep(next(waits))
    return model.model_copy(update={"model_id": arn})


def serving_name(name: str) -> str:
    """A deployment / provisioned model name Bedrock accepts (letters, digits, hyphens; 63 at most)."""
    cleaned = re.sub(r"[^0-9a-zA-Z]+", "-", name).strip("-")
    return (cleaned[:63] if len(cleaned) <= 63
            else f"{cleaned[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}")


def undeploy(client: Any, serving_arn: str) -> None:
    """Delete a deployment or provisioned throughput (what stops its billing); a no-op when it is gone."""
    try:
        with translated():
            if ":custom-model-deployment/" in serving_arn:
                client.delete_custom_model_deployment(customModelDeploymentIdentifier=serving_arn)
            else:
                client.delete_provisioned_model_throughput(provisionedModelId=serving_arn)
    except PermanentProviderError as exc:
        if exc.status_code != 404:
            raise


def _serves(client: Any, arn: str) -> bool:
    with translated():
        if ":custom-model-deployment/" in arn:
            answer, table = (client.get_custom_model_deployment(customModelDeploymentIdentifier=arn),
                             DEPLOYMENT_STATES)
        else:
            answer, table = (client.get_provisioned_model_throughput(provisionedModelId=arn),
                             PROVISIONED_STATES)
    status = str(answer.get("status"))
    if status not in table:
        raise UnexpectedProviderResponse(NAME, f"{arn} has unknown status {status!r}")
    if table[status] is False:
        raise PermanentProviderError(NAME, f"{arn} failed: {answer.get('failureMessage') or 'no message'}")
    return bool(table[status])
