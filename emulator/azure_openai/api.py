"""The Azure OpenAI routes: OpenAI's files and fine-tuning jobs under `/azure/openai/...?api-version=`, chat
completions addressed to a deployment, and the management API's model deployments.

    /azure/openai/files, /azure/openai/fine_tuning/jobs/...   the OpenAI handlers on the Azure store
    /azure/openai/deployments/{deployment}/chat/completions  answered by the model the deployment serves
    /azure/management/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.CognitiveServices/accounts/
        {account}/deployments/{name}                          PUT (create or update), GET, DELETE

Azure's data plane takes the key in an `api-key` header (or an Entra ID bearer token) and refuses a request
without `api-version`; the management plane takes a bearer token. On the emulator the emulator's key stands
for both. The app's own key check skips `/azure`, so this module checks the key itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import chat
from emulator.azure_openai.store import AzureStore, azure_store
from emulator.openai import api as openai_api
from emulator.wire import ApiError, json_body

PREFIX = "/azure"
DATA = f"{PREFIX}/openai"
ACCOUNT = (f"{PREFIX}/management/subscriptions/{{subscription}}/resourceGroups/{{group}}/providers/"
           "Microsoft.CognitiveServices/accounts/{account}")
Handler = Callable[[Request], Awaitable[Response]]


def _store(request: Request) -> AzureStore:
    return azure_store(request.app.state.emulator)


def _check_key(request: Request, *, data_plane: bool) -> None:
    expected = getattr(request.app.state, "api_key", None)
    if expected is None:
        return
    bearer = request.headers.get("authorization", "")
    given = request.headers.get("api-key") if data_plane else None
    if given != expected and bearer != f"Bearer {expected}":
        raise ApiError(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                            "to provide a valid key for an active subscription and use a correct regional "
                            "API endpoint for your resource.", code="401")


def _data(handler: Handler) -> Handler:
    """An OpenAI route as Azure serves it: key and api-version checked, on the Azure store."""
    async def route(request: Request) -> Response:
        _check_key(request, data_plane=True)
        if not request.query_params.get("api-version"):
            raise ApiError(404, "Resource not found", code="404")
        request.scope[openai_api.STORE_SCOPE] = azure_store  # the OpenAI handlers use Azure's store
        return await handler(request)
    return route


def _management(handler: Handler) -> Handler:
    async def route(request: Request) -> Response:
        _check_key(request, data_plane=False)
        if not request.query_params.get("api-version"):
            raise ApiError(400, "The api-version query parameter (?api-version=) is required for all "
                                "requests.", code="MissingApiVersionParameter")
        return await handler(request)
    return route


async def deployment_chat(request: Request) -> Response:
    body = await json_body(request)
    body["model"] = request.path_params["deployment"]  # the deployment, not the body, picks the model
    return await chat.respond(request.app.state.emulator, body, _store(request).imitation)


# -- deployments (the management API) ---------------------------------------------------------------

def _deployment_object(request: Request, name: str, record: dict[str, Any]) -> dict[str, Any]:
    path = request.url.path.removeprefix(f"{PREFIX}/management")
    return {"id": path, "type": "Microsoft.CognitiveServices/accounts/deployments", "name": name,
            "sku": {"name": record["sku"], "capacity": record["capacity"]},
            "properties": {"model": {"format": "OpenAI", "name": record["model"], "version": "1"},
                           "provisioningState": _store(request).provisioning_state(record)}}


async def put_deployment(request: Request) -> Response:
    name = request.path_params["name"]
    record, new = _store(request).deploy(name, await json_body(request))
    return JSONResponse(_deployment_object(request, name, record), status_code=201 if new else 200)


async def get_deployment(request: Request) -> Response:
    name = request.path_params["name"]
    record = _store(request).deployment(name)
    if record is None:
        raise ApiError(404, f"The Deployment '{name}' under resource group was not found.",
                       code="DeploymentNotFound")
    return JSONResponse(_deployment_object(request, name, record))


async def delete_deployment(request: Request) -> Response:
    gone = _store(request).undeploy(request.path_params["name"])
    return Response(status_code=200 if gone else 204)


ROUTES = [
    Route(f"{DATA}/files", _data(openai_api.upload_file), methods=["POST"]),
    Route(f"{DATA}/files", _data(openai_api.list_files), methods=["GET"]),
    Route(f"{DATA}/files/{{file_id}}", _data(openai_api.retrieve_file), methods=["GET"]),
    Route(f"{DATA}/files/{{file_id}}/content", _data(openai_api.file_content), methods=["GET"]),
    Route(f"{DATA}/fine_tuning/jobs", _data(openai_api.create_job), methods=["POST"]),
    Route(f"{DATA}/fine_tuning/jobs", _data(openai_api.list_jobs), methods=["GET"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}", _data(openai_api.retrieve_job), methods=["GET"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}/events", _data(openai_api.list_events), methods=["GET"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}/checkpoints", _data(openai_api.list_checkpoints),
          methods=["GET"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}/cancel", _data(openai_api.cancel_job), methods=["POST"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}/pause", _data(openai_api.pause_job), methods=["POST"]),
    Route(f"{DATA}/fine_tuning/jobs/{{job_id}}/resume", _data(openai_api.resume_job), methods=["POST"]),
    Route(f"{DATA}/deployments/{{deployment}}/chat/completions", _data(deployment_chat), methods=["POST"]),
    Route(f"{ACCOUNT}/deployments/{{name}}", _management(put_deployment), methods=["PUT"]),
    Route(f"{ACCOUNT}/deployments/{{name}}", _management(get_deployment), methods=["GET"]),
    Route(f"{ACCOUNT}/deployments/{{name}}", _management(delete_deployment), methods=["DELETE"]),
]
