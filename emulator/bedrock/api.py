"""The Bedrock routes, served under /bedrock: one endpoint_url for the s3, bedrock and bedrock-runtime
clients of boto3 (S3 in path style), told apart by path.

Control plane (rest-json): POST/GET /model-customization-jobs, GET /model-customization-jobs/{name or
ARN}, POST .../{id}/stop, GET /custom-models/{id}; custom-model deployments and provisioned throughput
(create, get, delete; Creating until the timeline's queue time has passed). Runtime: POST
/model/{id}/converse, for a foundation model, a serving ARN, or (a deliberate shortcut: Bedrock refuses
it) a custom model ARN. S3: PUT and GET /{bucket}/{key}. botocore percent-encodes ARNs in the path; the
server hands them over decoded, so the identifiers are `path` parameters. Errors carry
`x-amzn-ErrorType` and `{"message"}` (S3: an XML `<Error>`). Requests must be SigV4-signed; with an API
key the credential's access key id must be it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.bedrock.store import (
    STOPPING_S,
    BedrockError,
    BedrockJob,
    BedrockStore,
    bedrock_store,
    validation_loss,
)
from emulator.state import EmulatorState
from emulator.wire import ApiError, json_body
from providers.imitation import count_tokens

PREFIX = "/bedrock"
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([a-z0-9-]+)/")
_REQUIRED = ("jobName", "customModelName", "roleArn", "baseModelIdentifier", "trainingDataConfig",
             "outputDataConfig")
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*$")
_MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")
Handler = Callable[[Request], Awaitable[Response]]


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _store(request: Request) -> BedrockStore:
    return bedrock_store(_state(request))


def _region(request: Request) -> str:
    """The signing region; 403 when the request is unsigned or signed with another key than the API key."""
    found = _CREDENTIAL.match(request.headers.get("authorization", ""))
    if found is None:
        raise BedrockError(403, "AccessDeniedException",
                           "Missing Authentication Token: sign the request with SigV4.")
    expected = getattr(request.app.state, "api_key", None)
    if expected is not None and found.group(1) != expected:
        raise BedrockError(403, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
    return found.group(2)


def _aws(handler: Handler, *, xml: bool = False) -> Handler:
    async def handle(request: Request) -> Response:
        try:
            _region(request)
            return await handler(request)
        except ApiError as exc:  # the serving limit, or a body that is not JSON
            code = {429: "ThrottlingException"}.get(exc.status, "ValidationException" if exc.status < 500
                                                    else "InternalServerException")
            error = BedrockError(exc.status, code, exc.message)
            return _render(error, xml)
        except BedrockError as exc:
            return _render(exc, xml)
    return handle


def _render(error: BedrockError, xml: bool) -> Response:
    if xml:
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{error.code}</Code>"
                f"<Message>{escape(error.message)}</Message></Error>")
        return Response(body, status_code=error.status, media_type="application/xml")
    return JSONResponse({"message": error.message}, status_code=error.status,
                        headers={"x-amzn-ErrorType": error.code})


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


# -- control plane ---------------------------------------------------------------------------------

async def create_job(request: Request) -> Response:
    body = await json_body(request)
    missing = [key for key in _REQUIRED if not body.get(key)]
    if missing:
        raise BedrockError(400, "ValidationException", f"1 validation error detected: Value null at "
                           f"'{missing[0]}' failed to satisfy constraint: Member must not be null")
    if not _JOB_NAME.match(body["jobName"]) or len(body["jobName"]) > 63:
        raise BedrockError(400, "ValidationException", f"Invalid jobName: {body['jobName']}")
    if not _MODEL_NAME.match(body["customModelName"]):
        raise BedrockError(400, "ValidationException", f"Invalid customModelName: {body['customModelName']}")
    if body.get("customizationType", "FINE_TUNING") != "FINE_TUNING":
        raise BedrockError(400, "ValidationException",
                           "The emulator trains customizationType FINE_TUNING only.")
    if any(not isinstance(v, str) for v in (body.get("hyperParameters") or {}).values()):
        raise BedrockError(400, "ValidationException", "hyperParameters values must be strings.")
    job = _store(request).create_job(body, _region(request))
    return JSONResponse({"jobArn": job.arn}, status_code=201)


async def get_job(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(job_object(bedrock_store(state).job(request.path_params["job_id"]), state.now()))


async def list_jobs(request: Request) -> Response:
    state, query = _state(request), request.query_params
    jobs = [job_object(job, state.now()) for job in bedrock_store(state).list_jobs()]
    jobs = [j for j in jobs if query.get("nameContains", "") in j["jobName"]
            and query.get("statusEquals", j["status"]) == j["status"]]
    if query.get("sortOrder") == "Ascending":
        jobs.reverse()
    keys = ("jobArn", "jobName", "status", "statusDetails", "creationTime", "lastModifiedTime", "endTime",
            "baseModelArn", "customizationType")
    summaries = [{k: j[k] for k in keys if k in j} | ({"customModelArn": j["outputModelArn"]}
                                                       if "outputModelArn" in j else {}) for j in jobs]
    return JSONResponse({"modelCustomizationJobSummaries": summaries[:int(query.get("maxResults", 1000))]})


async def stop_job(request: Request) -> Response:
    _store(request).stop(request.path_params["job_id"])
    return JSONResponse({})


async def get_custom_model(request: Request) -> Response:
    state = _state(request)
    job = bedrock_store(state).custom_model(request.path_params["model_id"])
    view = job_object(job, state.now())
    return JSONResponse({"modelArn": job.model_arn, "modelName": job.request["customModelName"],
                         "jobArn": job.arn, "jobName": job.name, "baseModelArn": view["baseModelArn"],
                         "customizationType": "FINE_TUNING", "modelStatus": "Active",
                         "creationTime": view.get("endTime"), "hyperParameters": view["hyperParameters"],
                         "trainingDataConfig": view["trainingDataConfig"],
                         "outputDataConfig": view["outputDataConfig"]})


def job_object(job: BedrockJob, now: float) -> dict[str, Any]:
    """GetModelCustomizationJob's answer for the job as it is at `now`."""
    state = job.progress(now)
    status, phases = _status(job, state.status, now, state.error)
    request = job.request
    view: dict[str, Any] = {
        "jobArn": job.arn, "jobName": job.name, "outputModelName": request["customModelName"],
        "clientRequestToken": request.get("clientRequestToken"), "roleArn": request["roleArn"],
        "status": status,
        "statusDetails": {name: {"status": phase, "lastModifiedTime": _iso(now)}
                          for name, phase in phases.items()},
        "creationTime": _iso(job.created_at), "lastModifiedTime": _iso(now),
        "baseModelArn": f"arn:aws:bedrock:{job.region}::foundation-model/{request['baseModelIdentifier']}",
        "hyperParameters": request.get("hyperParameters") or {},
        "trainingDataConfig": request["trainingDataConfig"],
        "validationDataConfig": request.get("validationDataConfig") or {"validators": []},
        "outputDataConfig": request["outputDataConfig"], "customizationType": "FINE_TUNING",
    }
    if status in ("Completed", "Failed", "Stopped"):
        view["endTime"] = _iso(state.finished_at)
    if status == "Failed":
        view["failureMessage"] = (state.error or {}).get("message", "Internal failure")
    losses = [e.data["train_loss"] for e in state.events if e.type == "metrics" and e.data]
    if status == "Completed":
        view["outputModelArn"] = job.model_arn
        view["trainingMetrics"] = {"trainingLoss": losses[-1] if losses else 0.0}
        if view["validationDataConfig"]["validators"]:
            view["validationMetrics"] = [{"validationLoss": validation_loss(losses[-1] if losses else 0.0)}]
    return view


def _status(job: BedrockJob, status: str, now: float, error: dict | None) -> tuple[str, dict[str, str]]:
    """The job status and its three sub-statuses (validation, data processing, training)."""
    names = ("validationDetails", "dataProcessingDetails", "trainingDetails")
    if status == "cancelled":
        done = "Stopping" if now < (job.stopped_at or now) + STOPPING_S else "Stopped"
        return done, dict(zip(names, ("Completed", "Completed", done), strict=True))
    phases = {"validating_files": ("InProgress", "NotStarted", "NotStarted"),
              "queued": ("Completed", "InProgress", "NotStarted"),
              "running": ("Completed", "Completed", "InProgress"),
              "succeeded": ("Completed", "Completed", "Completed")}
    if status == "failed":
        data_fault = (error or {}).get("code") == "invalid_training_file"
        failed = (("Failed", "NotStarted", "NotStarted") if data_fault
                  else ("Completed", "Completed", "Failed"))
        return "Failed", dict(zip(names, failed, strict=True))
    overall = "Completed" if status == "succeeded" else "InProgress"
    return overall, dict(zip(names, phases[status], strict=True))



# -- serving ---------------------------------------------------------------------------------------

_DEPLOYMENT, _PROVISIONED = "custom-model-deployment", "provisioned-model"


async def create_deployment(request: Request) -> Response:
    body = await json_body(request)
    serving = _store(request).create_serving(
        _DEPLOYMENT, str(body.get("modelDeploymentName") or ""), str(body.get("modelArn") or ""),
        body.get("clientRequestToken"))
    return JSONResponse({"customModelDeploymentArn": serving["arn"]}, status_code=202)


async def create_provisioned(request: Request) -> Response:
    body = await json_body(request)
    serving = _store(request).create_serving(
        _PROVISIONED, str(body.get("provisionedModelName") or ""), str(body.get("modelId") or ""),
        body.get("clientRequestToken"), int(body.get("modelUnits") or 1))
    return JSONResponse({"provisionedModelArn": serving["arn"]}, status_code=201)


async def get_serving(request: Request) -> Response:
    kind = _DEPLOYMENT if "custom-model-deployments" in request.url.path else _PROVISIONED
    serving, ready = _store(request).serving(request.path_params["serving_id"], kind)
    created = _iso(serving["created_at"])
    if kind == _DEPLOYMENT:
        return JSONResponse({"customModelDeploymentArn": serving["arn"],
                             "modelDeploymentName": serving["name"],
                             "modelArn": serving["model_arn"], "createdAt": created,
                             "status": "Active" if ready else "Creating"})
    return JSONResponse({"modelUnits": serving["units"], "desiredModelUnits": serving["units"],
                         "provisionedModelName": serving["name"], "provisionedModelArn": serving["arn"],
                         "modelArn": serving["model_arn"], "desiredModelArn": serving["model_arn"],
                         "foundationModelArn": serving["model_arn"], "creationTime": created,
                         "lastModifiedTime": created, "status": "InService" if ready else "Creating"})


async def delete_serving(request: Request) -> Response:
    kind = _DEPLOYMENT if "custom-model-deployments" in request.url.path else _PROVISIONED
    _store(request).delete_serving(request.path_params["serving_id"], kind)
    return JSONResponse({})


# -- runtime ---------------------------------------------------------------------------------------

async def converse(request: Request) -> Response:
    state = _state(request)
    body = await json_body(request)
    started = time.perf_counter()
    await state.admit_completion()
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BedrockError(400, "ValidationException", "messages must be a non-empty list.")
    chat = [{"role": "system", "content": " ".join(b.get("text", "") for b in body.get("system") or [])}]
    chat += [{"role": m.get("role"), "content": "".join(b.get("text", "") for b in m.get("content") or [])}
             for m in messages]
    text = bedrock_store(state).imitation(request.path_params["model_id"]).reply(chat)
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    words = text.split(" ")
    reason = "end_turn"
    if isinstance(limit, int) and len(words) > limit:
        text, reason = " ".join(words[:limit]), "max_tokens"
    state.count_completion()
    prompt_tokens = sum(count_tokens(m["content"]) for m in chat)
    return JSONResponse({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": reason,
        "usage": {"inputTokens": prompt_tokens, "outputTokens": count_tokens(text),
                  "totalTokens": prompt_tokens + count_tokens(text)},
        "metrics": {"latencyMs": int((time.perf_counter() - started) * 1000)},
    }, headers={"x-amzn-RequestId": str(uuid.uuid4())})


# -- S3 --------------------------------------------------------------------------------------------

async def put_object(request: Request) -> Response:
    etag = _store(request).put_object(request.path_params["bucket"], request.path_params["key"],
                                      await request.body())
    return Response(status_code=200, headers={"ETag": f'"{etag}"'})


async def get_object(request: Request) -> Response:
    content = _store(request).get_object(request.path_params["bucket"], request.path_params["key"])
    return Response(content, media_type="application/octet-stream")


ROUTES = [
    Route(f"{PREFIX}/model-customization-jobs", _aws(create_job), methods=["POST"]),
    Route(f"{PREFIX}/model-customization-jobs", _aws(list_jobs), methods=["GET"]),
    Route(f"{PREFIX}/model-customization-jobs/{{job_id:path}}/stop", _aws(stop_job), methods=["POST"]),
    Route(f"{PREFIX}/model-customization-jobs/{{job_id:path}}", _aws(get_job), methods=["GET"]),
    Route(f"{PREFIX}/custom-models/{{model_id:path}}", _aws(get_custom_model), methods=["GET"]),
    Route(f"{PREFIX}/model-customization/custom-model-deployments", _aws(create_deployment),
          methods=["POST"]),
    Route(f"{PREFIX}/model-customization/custom-model-deployments/{{serving_id:path}}", _aws(get_serving),
          methods=["GET"]),
    Route(f"{PREFIX}/model-customization/custom-model-deployments/{{serving_id:path}}", _aws(delete_serving),
          methods=["DELETE"]),
    Route(f"{PREFIX}/provisioned-model-throughput", _aws(create_provisioned), methods=["POST"]),
    Route(f"{PREFIX}/provisioned-model-throughput/{{serving_id:path}}", _aws(get_serving), methods=["GET"]),
    Route(f"{PREFIX}/provisioned-model-throughput/{{serving_id:path}}", _aws(delete_serving),
          methods=["DELETE"]),
    Route(f"{PREFIX}/model/{{model_id:path}}/converse", _aws(converse), methods=["POST"]),
    Route(f"{PREFIX}/{{bucket}}/{{key:path}}", _aws(put_object, xml=True), methods=["PUT"]),
    Route(f"{PREFIX}/{{bucket}}/{{key:path}}", _aws(get_object, xml=True), methods=["GET"]),
]
