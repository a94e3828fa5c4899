"""The Together routes, served under /together (a Together client takes `<emulator>/together` as base_url).

Files: POST /v1/files answers 302 with a presigned PUT URL (served here under /together/uploads, with a
token instead of the API key) and X-Together-File-Id, or 409 with the file id when that content was
already uploaded; POST /v1/files/{id}/preprocess starts validation. Fine-tunes: model limits and price
estimates from the catalog, create, list, retrieve, events, metrics, checkpoints, cancel (answered
`cancel_requested`, `cancelled` afterwards), the adapter download, and chat completions.
Handlers only parse, call the store (store.py) and render (shapes.py), like the OpenAI routes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import chat, training_file
from emulator.state import EmulatorState
from emulator.together import endpoints
from emulator.together.endpoints import endpoint_store
from emulator.together.shapes import (
    JobRequest,
    checkpoint_objects,
    facts_for,
    file_object,
    job_object,
    limits_object,
    metric_rows,
    price_estimate,
)
from emulator.together.store import TogetherStore, together_store
from emulator.wire import ApiError, json_body

PREFIX = "/together"
UPLOADS = f"{PREFIX}/uploads"
_FILE_TYPES = ("jsonl", "parquet", "csv")
_PURPOSES = ("fine-tune", "eval", "batch-api")


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _store(request: Request) -> TogetherStore:
    return together_store(_state(request))


# -- files -----------------------------------------------------------------------------------------

async def start_upload(request: Request) -> Response:
    async with request.form() as form:
        fields = {name: form.get(name) for name in ("purpose", "file_name", "file_type", "checksum")}
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise ApiError(400, f"Missing required parameter: '{missing[0]}'.", param=missing[0])
    if fields["purpose"] not in _PURPOSES or fields["file_type"] not in _FILE_TYPES:
        raise ApiError(400, f"Invalid purpose or file_type: expected one of {_PURPOSES} and "
                            f"{_FILE_TYPES}.")
    record = _store(request).start_upload(fields["file_name"], fields["purpose"], fields["file_type"],
                                          fields["checksum"])
    location = f"{str(request.base_url).rstrip('/')}{UPLOADS}/{record.id}?token={record.token}"
    return Response(status_code=302, headers={"Location": location, "X-Together-File-Id": record.id})


async def receive_upload(request: Request) -> Response:
    _store(request).receive(request.path_params["file_id"], request.query_params.get("token", ""),
                            await request.body())
    return Response(status_code=200)


async def preprocess(request: Request) -> Response:
    store = _store(request)
    record = store.preprocess(request.path_params["file_id"])
    return JSONResponse(file_object(record, store.file_status(record)))


async def list_files(request: Request) -> Response:
    store = _store(request)
    return JSONResponse({"data": [file_object(f, store.file_status(f)) for f in store.list_files()]})


async def retrieve_file(request: Request) -> Response:
    store = _store(request)
    record = store.file(request.path_params["file_id"])
    return JSONResponse(file_object(record, store.file_status(record)))


async def file_content(request: Request) -> Response:
    content = _store(request).content(request.path_params["file_id"])
    return Response(content, media_type="application/octet-stream")


# -- fine-tunes ------------------------------------------------------------------------------------

async def model_limits(request: Request) -> Response:
    facts = facts_for(request.query_params.get("model_name", ""), param="model_name")
    return JSONResponse(limits_object(facts))


async def estimate_price(request: Request) -> Response:
    store, body = _store(request), await json_body(request)
    facts = facts_for(str(body.get("model") or ""), param="model")
    record = store.file(str(body.get("training_file") or ""))
    status = store.file_status(record)
    if status != "COMPLETED":
        reason = "train_file_invalid" if status == "INVALID_FORMAT" else "train_file_not_validated"
        return JSONResponse({"estimation_available": False, "unavailable_reason": reason})
    tokens = training_file.content_tokens(store.content(record.id))
    method = (body.get("training_method") or {}).get("method", "sft")
    return JSONResponse(price_estimate(facts, tokens, int(body.get("n_epochs") or 1), method))


async def create_job(request: Request) -> Response:
    state = _state(request)
    job = _store(request).create_job(JobRequest.parse(await json_body(request)))
    return JSONResponse(job_object(job, job.progress(state.now()), state.now()))


async def list_jobs(request: Request) -> Response:
    now = _state(request).now()
    jobs = _store(request).list_jobs()
    return JSONResponse({"data": [job_object(job, job.progress(now), now) for job in jobs]})


async def retrieve_job(request: Request) -> Response:
    state = _state(request)
    job = _store(request).job(request.path_params["job_id"])
    return JSONResponse(job_object(job, job.progress(state.now()), state.now()))


async def list_events(request: Request) -> Response:
    state = _state(request)
    job = _store(request).job(request.path_params["job_id"])
    return JSONResponse({"data": job_object(job, job.progress(state.now()), state.now())["events"]})


async def list_metrics(request: Request) -> Response:
    state = _state(request)
    job = _store(request).job(request.path_params["job_id"])
    return JSONResponse({"metrics": metric_rows(job.progress(state.now()))})


async def list_checkpoints(request: Request) -> Response:
    state = _state(request)
    job = _store(request).job(request.path_params["job_id"])
    return JSONResponse({"data": checkpoint_objects(job, job.progress(state.now()))})


async def cancel_job(request: Request) -> Response:
    state = _state(request)
    job = _store(request).cancel(request.path_params["job_id"])
    return JSONResponse(job_object(job, job.progress(state.now()), state.now(), status="cancel_requested"))


async def download(request: Request) -> Response:
    job_id = request.query_params.get("ft_id", "")
    if request.query_params.get("checkpoint", "adapter") != "adapter":
        raise ApiError(400, "The emulator serves LoRA adapters only: use checkpoint=adapter.",
                       param="checkpoint")
    archive = _store(request).adapter_archive(job_id)
    return Response(archive, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{job_id}-adapter.tar.gz"'})


async def chat_completions(request: Request) -> Response:
    body, store, served = await json_body(request), _store(request), endpoint_store(_state(request))
    # a dedicated endpoint's name answers like the model it serves, while it runs
    return await chat.respond(_state(request), body,
                              lambda model: store.imitation(served.model_behind(model) or model))


ROUTES = [
    *endpoints.ROUTES,
    Route(f"{PREFIX}/v1/files", start_upload, methods=["POST"]),
    Route(f"{PREFIX}/v1/files", list_files, methods=["GET"]),
    Route(f"{PREFIX}/v1/files/{{file_id}}", retrieve_file, methods=["GET"]),
    Route(f"{PREFIX}/v1/files/{{file_id}}/content", file_content, methods=["GET"]),
    Route(f"{PREFIX}/v1/files/{{file_id}}/preprocess", preprocess, methods=["POST"]),
    Route(f"{UPLOADS}/{{file_id}}", receive_upload, methods=["PUT"]),
    Route(f"{PREFIX}/v1/fine-tunes/models/limits", model_limits, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/estimate-price", estimate_price, methods=["POST"]),
    Route(f"{PREFIX}/v1/fine-tunes", create_job, methods=["POST"]),
    Route(f"{PREFIX}/v1/fine-tunes", list_jobs, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/{{job_id}}", retrieve_job, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/{{job_id}}/events", list_events, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/{{job_id}}/metrics", list_metrics, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/{{job_id}}/checkpoints", list_checkpoints, methods=["GET"]),
    Route(f"{PREFIX}/v1/fine-tunes/{{job_id}}/cancel", cancel_job, methods=["POST"]),
    Route(f"{PREFIX}/v1/finetune/download", download, methods=["GET"]),
    Route(f"{PREFIX}/v1/chat/completions", chat_completions, methods=["POST"]),
]
