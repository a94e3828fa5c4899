"""A scripted Bedrock on botocore's Stubber: the transport-level stub of the contract tests.

Each client gets a Stubber; a `provide-client-params` hook, which botocore runs before the Stubber's checks,
computes the answer of every call from the script's state and queues it, so the Stubber checks the request
against the operation's input shape and the answer against its output shape, and nothing is sent. A job
moves one status further at each get (training NotStarted, InProgress, then Completed); a stop answers
Stopping, then Stopped; a tuned model answers only through a custom-model deployment, as on Bedrock;
`throttle_next` makes the next get a ThrottlingException; `requests` keeps every create request for
inspection.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore import xform_name
from botocore.response import StreamingBody
from botocore.stub import Stubber

from providers.bedrock.adapter import BedrockProvider
from providers.bedrock.client import BedrockOptions
from providers.imitation import BaseImitation, TunedImitation

ACCOUNT = "123456789012"
_SCRIPT = [("InProgress", "NotStarted"), ("InProgress", "InProgress"), ("Completed", "Completed")]


class _Refusal(Exception):
    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class BedrockStub:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.throttle_next = False
        self.deployments: dict[str, dict[str, Any]] = {}

    def provider(self, options: BedrockOptions) -> BedrockProvider:
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        clients = [session.client(name) for name in ("s3", "bedrock", "bedrock-runtime")]
        for client in clients:
            stubber = Stubber(client)
            service = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register(f"provide-client-params.{service}", self._scripted(stubber))
            stubber.activate()
        return BedrockProvider(*clients, options)

    def _scripted(self, stubber: Stubber) -> Any:
        def queue(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
            operation = xform_name(model.name)
            try:
                answer = getattr(self, operation)(**params)
            except _Refusal as refusal:
                stubber.add_client_error(operation, refusal.code, str(refusal),
                                         http_status_code=refusal.status)
            else:
                stubber.add_response(operation, answer, params)
        return queue

    # -- S3 --------------------------------------------------------------------------------------

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[f"s3://{Bucket}/{Key}"] = Body
        return {"ETag": '"stub"'}

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        content = self.objects.get(f"s3://{Bucket}/{Key}")
        if content is None:
            raise _Refusal("NoSuchKey", 404, "The specified key does not exist.")
        return {"Body": StreamingBody(io.BytesIO(content), len(content))}

    # -- control plane ---------------------------------------------------------------------------

    def create_model_customization_job(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        for job in self.jobs.values():
            if job["request"].get("clientRequestToken") == request.get("clientRequestToken"):
                return {"jobArn": job["arn"]}
        name, base = request["jobName"], request["baseModelIdentifier"]
        self.jobs[name] = {"request": request, "polls": 0, "stopped": None,
                           "arn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/{base}/"
                                  f"{len(self.jobs):012d}"}
        return {"jobArn": self.jobs[name]["arn"]}

    def get_model_customization_job(self, jobIdentifier: str) -> dict[str, Any]:
        if self.throttle_next:
            self.throttle_next = False
            raise _Refusal("ThrottlingException", 429, "Too many requests, please wait before trying again.")
        job = self._job(jobIdentifier)
        if job["stopped"] is not None:
            status = training = job["stopped"]
            job["stopped"] = "Stopped"
        else:
            status, training = _SCRIPT[min(job["polls"], len(_SCRIPT) - 1)]
            job["polls"] += 1
        request = job["request"]
        view = {"jobArn": job["arn"], "jobName": request["jobName"],
                "outputModelName": request["customModelName"],
                "roleArn": request["roleArn"], "status": status, "creationTime": datetime.now(UTC),
                "statusDetails": {"trainingDetails": {"status": training}},
                "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/"
                                f"{request['baseModelIdentifier']}",
                "trainingDataConfig": request["trainingDataConfig"],
                "validationDataConfig": request.get("validationDataConfig", {"validators": []}),
                "outputDataConfig": request["outputDataConfig"]}
        if status == "Completed":
            view |= {"outputModelArn": _model_arn(job), "trainingMetrics": {"trainingLoss": 0.4}}
        return view

    def stop_model_customization_job(self, jobIdentifier: str) -> dict[str, Any]:
        job = self._job(jobIdentifier)
        if job["stopped"] is not None or job["polls"] >= len(_SCRIPT):
            raise _Refusal("ValidationException", 400, "The job is not in progress.")
        job["stopped"] = "Stopping"
        return {}

    def _job(self, identifier: str) -> dict[str, Any]:
        for name, job in self.jobs.items():
            if identifier in (name, job["arn"]):
                return job
        raise _Refusal("ResourceNotFoundException", 404,
                       f"Could not find model customization job {identifier}.")

    # -- serving: on-demand custom-model deployments (Creating at the first get, then Active) ---------

    def create_custom_model_deployment(self, modelDeploymentName: str, modelArn: str,
                                       **_: Any) -> dict[str, Any]:
        arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/{len(self.deployments):012d}"
        for existing in self.deployments.values():
            if existing["name"] == modelDeploymentName:
                return {"customModelDeploymentArn": existing["arn"]}
        self.deployments[arn] = {"arn": arn, "name": modelDeploymentName, "model": modelArn, "gets": 0}
        return {"customModelDeploymentArn": arn}

    def get_custom_model_deployment(self, customModelDeploymentIdentifier: str) -> dict[str, Any]:
        deployment = self.deployments.get(customModelDeploymentIdentifier)
        if deployment is None:
            raise _Refusal("ResourceNotFoundException", 404,
                           f"Could not find {customModelDeploymentIdentifier}.")
        deployment["gets"] += 1
        return {"customModelDeploymentArn": deployment["arn"], "modelDeploymentName": deployment["name"],
                "modelArn": deployment["model"], "createdAt": datetime.now(UTC),
                "status": "Active" if deployment["gets"] > 1 else "Creating"}

    # -- runtime ---------------------------------------------------------------------------------

    def converse(self, modelId: str, messages: list[dict[str, Any]], **request: Any) -> dict[str, Any]:
        chat = [{"role": m["role"], "content": "".join(b["text"] for b in m["content"])} for m in messages]
        if ":custom-model/" in modelId:
            raise _Refusal("ValidationException", 400,
                           f"Invocation of model ID {modelId} with on-demand throughput isn't supported.")
        served = self.deployments.get(modelId, {}).get("model", modelId)
        jobs = [job for job in self.jobs.values() if _model_arn(job) == served]
        if jobs:
            content = self.objects[jobs[0]["request"]["trainingDataConfig"]["s3Uri"]].decode()
            text = TunedImitation.from_jsonl(_chat_lines(content)).reply(chat)
        else:
            text = BaseImitation().reply(chat)
        return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}


def _model_arn(job: dict[str, Any]) -> str:
    base = job["request"]["baseModelIdentifier"]
    return f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/{base}/{job['arn'][-12:]}"


def _chat_lines(content: str) -> list[str]:
    lines = []
    for line in content.splitlines():
        example = json.loads(line)
        lines.append(json.dumps({"messages": [{"role": m["role"],
                                               "content": "".join(b["text"] for b in m["content"])}
                                              for m in example["messages"]]}))
    return lines
