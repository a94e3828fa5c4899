"""The OpenAI routes: files, fine-tuning jobs (events, checkpoints, cancel/pause/resume), chat completions.

Handlers only parse, call the store and render; refusals are raised as `ApiError` and rendered by
the app. Lists follow the service: newest first, `after` a cursor id, `has_more` exact (the SDK keeps
paging until it is false).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import chat
from emulator.openai.shapes import (
    JobRequest,
    checkpoint_objects,
    event_objects,
    file_object,
    job_object,
    page,
)
from emulator.openai.store import OpenAIStore, openai_store
from emulator.state import EmulatorState
from emulator.wire import ApiError, json_body

_PURPOSES = ("fine-tune", "batch", "assistants", "vision", "user_data", "evals")


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


STORE_SCOPE = "emulator.openai_store"  # a route serving these handlers on another store sets its accessor


def _store(request: Request) -> OpenAIStore:
    return request.scope.get(STORE_SCOPE, openai_store)(_state(request))


def _limit(request: Request, default: int, maximum: int = 100) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(400, f"Invalid 'limit': expected an integer from 1 to {maximum}, got {raw!r}.",
                       param="limit", code="invalid_value")
    return int(raw)


# -- files -----------------------------------------------------------------------------------------

async def upload_file(request: Request) -> Response:
    store = _store(request)
    async with request.form() as form:
        purpose, upload = form.get("purpose"), form.get("file")
        if not isinstance(purpose, str) or purpose not in _PURPOSES:
            raise ApiError(400, f"Invalid 'purpose': expected one of {', '.join(_PURPOSES)}.",
                           param="purpose")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file",
                           code="missing_required_parameter")
        record = store.add_file(upload.filename or "upload.jsonl", purpose, await upload.read())
    return JSONResponse(file_object(record, store.file_status(record)))


async def list_files(request: Request) -> Response:
    store, query = _store(request), request.query_params
    files = [file_object(f, store.file_status(f)) for f in store.list_files(query.get("purpose"))]
    if query.get("order") == "asc":
        files.reverse()
    return JSONResponse(page(files, after=query.get("after"), limit=_limit(request, 10000, 10000)))


async def retrieve_file(request: Request) -> Response:
    store = _store(request)
    record = store.file(request.path_params["file_id"])
    return JSONResponse(file_object(record, store.file_status(record)))


async def file_content(request: Request) -> Response:
    content = _store(request).file_content(request.path_params["file_id"])
    return Response(content, media_type="application/octet-stream")


# -- fine-tuning jobs ------------------------------------------------------------------------------

def _job_response(request: Request, job_id: str) -> Response:
    job = _store(request).job(job_id)
    return JSONResponse(job_object(job, job.progress(_state(request).now())))


async def create_job(request: Request) -> Response:
    job = _store(request).create_job(JobRequest.parse(await json_body(request)))
    return _job_response(request, job.id)


async def list_jobs(request: Request) -> Response:
    query = request.query_params
    wanted = {key[len("metadata["):-1]: value for key, value in query.multi_items()
              if key.startswith("metadata[") and key.endswith("]")}
    jobs, has_more = _store(request).list_jobs(after=query.get("after"), limit=_limit(request, 20),
                                               metadata=wanted, null_metadata=query.get("metadata") == "null")
    now = _state(request).now()
    data = [job_object(job, job.progress(now)) for job in jobs]
    return JSONResponse({"object": "list", "data": data, "has_more": has_more})


async def retrieve_job(request: Request) -> Response:
    return _job_response(request, request.path_params["job_id"])


async def list_events(request: Request) -> Response:
    job = _store(request).job(request.path_params["job_id"])
    events = event_objects(job, job.progress(_state(request).now()))
    return JSONResponse(page(events, after=request.query_params.get("after"), limit=_limit(request, 20)))


async def list_checkpoints(request: Request) -> Response:
    job = _store(request).job(request.path_params["job_id"])
    checkpoints = checkpoint_objects(job, job.progress(_state(request).now()))
    return JSONResponse(page(checkpoints, after=request.query_params.get("after"),
                             limit=_limit(request, 10)))


async def cancel_job(request: Request) -> Response:
    return _job_response(request, _store(request).cancel(request.path_params["job_id"]).id)


async def pause_job(request: Request) -> Response:
    return _job_response(request, _store(request).pause(request.path_params["job_id"]).id)


async def resume_job(request: Request) -> Response:
    return _job_response(request, _store(request).resume(request.path_params["job_id"]).id)


# -- inference -------------------------------------------------------------------------------------

async def chat_completions(request: Request) -> Response:
    body = await json_body(request)
    return await chat.respond(_state(request), body, _store(request).imitation)


async def list_models(request: Request) -> Response:
    data = [_model(name, created) for name, created in _store(request).models()]
    return JSONResponse({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    wanted = request.path_params["model"]
    for name, created in _store(request).models():
        if name == wanted:
            return JSONResponse(_model(name, created))
    if not wanted.startswith("ft:"):  # any base model answers chat, as at OpenAI for the ones it serves
        return JSONResponse(_model(wanted, 0))
    raise ApiError(404, f"The model '{wanted}' does not exist", param="model", code="model_not_found")


def _model(name: str, created: float) -> dict[str, object]:
    return {"id": name, "object": "model", "created": int(created),
            "owned_by": "user-loraflow-emulator" if name.startswith("ft:") else "system"}


ROUTES = [
    Route("/v1/files", upload_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/fine_tuning/jobs", create_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}", retrieve_job, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/events", list_events, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", list_checkpoints, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/pause", pause_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
]
