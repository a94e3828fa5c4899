"""The OpenAI routes: files, fine-tuning jobs (events, checkpoints, cancel/pause/resume), chat completions.

Handlers only parse, call the store and render; refusals are raised as `ApiError` and rendered by
the app. Lists follow the service: newest first, `after` a cursor id, `has_more` exact (the SDK keeps
paging until it is false).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import chat
from emulator.openai.shapes import (
    ApiError,
    JobRequest,
    checkpoint_objects,
    event_objects,
    file_object,
    job_object,
    page,
)
from emulator.state import EmulatorState

_PURPOSES = ("fine-tune", "batch", "assistants", "vision", "user_data", "evals")


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; ApiError 400 for anything else, as the service answers."""
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "We could not parse the JSON body of your request.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _limit(request: Request, default: int, maximum: int = 100) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(400, f"Invalid 'limit': expected an integer from 1 to {maximum}, got {raw!r}.",
                       param="limit", code="invalid_value")
    return int(raw)


# -- files -----------------------------------------------------------------------------------------

async def upload_file(request: Request) -> Response:
    state = _state(request)
    async with request.form() as form:
        purpose, upload = form.get("purpose"), form.get("file")
        if not isinstance(purpose, str) or purpose not in _PURPOSES:
            raise ApiError(400, f"Invalid 'purpose': expected one of {', '.join(_PURPOSES)}.", param="purpose")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file",
                           code="missing_required_parameter")
        record = state.add_file(upload.filename or "upload.jsonl", purpose, await upload.read())
    return JSONResponse(file_object(record, state.file_status(record)))


async def list_files(request: Request) -> Response:
    state = _state(request)
    files = [file_object(f, state.file_status(f)) for f in state.list_files(request.query_params.get("purpose"))]
    if request.query_params.get("order") == "asc":
        files.reverse()
    return JSONResponse(page(files, after=request.query_params.get("after"), limit=_limit(request, 10000, 10000)))


async def retrieve_file(request: Request) -> Response:
    state = _state(request)
    record = state.file(request.path_params["file_id"])
    return JSONResponse(file_object(record, state.file_status(record)))


async def file_content(request: Request) -> Response:
    content = _state(request).file_content(request.path_params["file_id"])
    return Response(content, media_type="application/octet-stream")


# -- fine-tuning jobs ------------------------------------------------------------------------------

def _job_response(state: EmulatorState, job_id: str) -> Response:
    job = state.job(job_id)
    return JSONResponse(job_object(job, job.progress(state.now())))


async def create_job(request: Request) -> Response:
    state = _state(request)
    job = state.create_job(JobRequest.parse(await json_body(request)))
    return _job_response(state, job.id)


async def list_jobs(request: Request) -> Response:
    state, query = _state(request), request.query_params
    wanted = {key[len("metadata["):-1]: value for key, value in query.multi_items()
              if key.startswith("metadata[") and key.endswith("]")}
    jobs, has_more = state.list_jobs(after=query.get("after"), limit=_limit(request, 20), metadata=wanted,
                                     null_metadata=query.get("metadata") == "null")
    now = state.now()
    data = [job_object(job, job.progress(now)) for job in jobs]
    return JSONResponse({"object": "list", "data": data, "has_more": has_more})


async def retrieve_job(request: Request) -> Response:
    return _job_response(_state(request), request.path_params["job_id"])


async def list_events(request: Request) -> Response:
    state = _state(request)
    job = state.job(request.path_params["job_id"])
    events = event_objects(job, job.progress(state.now()))
    return JSONResponse(page(events, after=request.query_params.get("after"), limit=_limit(request, 20)))


async def list_checkpoints(request: Request) -> Response:
    state = _state(request)
    job = state.job(request.path_params["job_id"])
    checkpoints = checkpoint_objects(job, job.progress(state.now()))
    return JSONResponse(page(checkpoints, after=request.query_params.get("after"), limit=_limit(request, 10)))


async def cancel_job(request: Request) -> Response:
    state = _state(request)
    return _job_response(state, state.cancel(request.path_params["job_id"]).id)


async def pause_job(request: Request) -> Response:
    state = _state(request)
    return _job_response(state, state.pause(request.path_params["job_id"]).id)


async def resume_job(request: Request) -> Response:
    state = _state(request)
    return _job_response(state, state.resume(request.path_params["job_id"]).id)


# -- inference -------------------------------------------------------------------------------------

async def chat_completions(request: Request) -> Response:
    return JSONResponse(await chat.complete(_state(request), await json_body(request)))


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
]
