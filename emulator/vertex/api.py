"""The Google Vertex AI routes, served under /vertex: Cloud Storage (what google-cloud-storage's uploads,
`exists` and downloads use), the supervised tuningJobs control plane, and generateContent.

Uploads: multipart, media and resumable sessions (in memory: a restart of the emulator forgets open sessions).
A google-genai client takes `<emulator>/vertex/` as `http_options.base_url` and a Cloud Storage client
takes `<emulator>/vertex` as `client_options.api_endpoint` (or STORAGE_EMULATOR_HOST). Both API versions
(v1, v1beta1) are served. Tuning jobs: create (base model from the catalog, adapter size, epochs,
multiplier checked), list (newest first, `labels.KEY="VALUE"` filters joined by AND, page tokens), get,
cancel (`{}`; CANCELLING briefly, then CANCELLED; 400 FAILED_PRECONDITION once ended). generateContent
answers on a succeeded job's endpoint like its training data, and on a publisher model generically.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.state import EmulatorState, Imitation
from emulator.vertex.errors import GoogleError
from emulator.vertex.shapes import (
    bucket_resource,
    chat_messages,
    generate_content,
    job_object,
    object_resource,
)
from emulator.vertex.store import VertexJob, VertexStore, vertex_store
from providers.catalog import model_facts
from providers.imitation import BaseImitation, TunedImitation, count_tokens

PREFIX = "/vertex"
_VERSIONS = ("v1", "v1beta1")
_ADAPTER_SIZES = ("ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_EIGHT",
                  "ADAPTER_SIZE_SIXTEEN", "ADAPTER_SIZE_THIRTY_TWO")
_LABEL_FILTER = re.compile(r'^labels\.([a-z0-9_-]+)\s*[=:]\s*"?([a-z0-9_-]*)"?$')
_PAGE_SIZE = 100
_CONTENT_RANGE = re.compile(r"^bytes (?:(?P<first>\d+)-\d+|\*)/(?P<total>\d+|\*)$")
_TOKEN = re.compile(r"\S+")


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _store(request: Request) -> VertexStore:
    return vertex_store(_state(request))


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise GoogleError(400, f"Invalid JSON payload received: {exc}") from exc
    if not isinstance(body, dict):
        raise GoogleError(400, "Invalid JSON payload received: expected an object.")
    return body


# -- Cloud Storage ---------------------------------------------------------------------------------

async def get_bucket(request: Request) -> Response:
    return JSONResponse(bucket_resource(request.path_params["bucket"]))


async def upload_object(request: Request) -> Response:
    kind, query = request.query_params.get("uploadType", ""), request.query_params
    if kind == "multipart":
        metadata, content = _multipart(request.headers.get("content-type", ""), await request.body())
    elif kind == "media":
        metadata, content = {"name": query.get("name")}, await request.body()
    elif kind == "resumable":
        return await _start_resumable(request)
    else:
        raise GoogleError(400, f"The emulator takes uploadType=multipart, media or resumable, got {kind!r}.")
    name = metadata.get("name") or query.get("name")
    if not name:
        raise GoogleError(400, "Required: the object name.", reason="required")
    match = query.get("ifGenerationMatch")
    record = _store(request).put_object(
        request.path_params["bucket"], name, content, content_type=metadata.get("contentType"),
        if_generation_match=int(match) if match is not None else None, crc32c=metadata.get("crc32c"))
    return JSONResponse(object_resource(record))


async def _start_resumable(request: Request) -> Response:
    """A resumable session (what google-cloud-storage uses above 8 MB): its URI in the Location header."""
    metadata, query = await _json(request), request.query_params
    name = metadata.get("name") or query.get("name")
    if not name:
        raise GoogleError(400, "Required: the object name.", reason="required")
    match = query.get("ifGenerationMatch")
    upload_id = _store(request).start_upload(
        request.path_params["bucket"], name, content_type=metadata.get("contentType"),
        crc32c=metadata.get("crc32c"), if_generation_match=int(match) if match is not None else None)
    location = request.url.remove_query_params("upload_id").include_query_params(upload_id=upload_id)
    return Response(status_code=200, headers={"Location": str(location)})


async def upload_chunk(request: Request) -> Response:
    """One PUT to a resumable session: `Content-Range: bytes A-B/TOTAL` (TOTAL `*` until the last chunk) or
    `bytes */TOTAL` to ask how much arrived. 308 with `Range` while incomplete, the object when complete."""
    found = _CONTENT_RANGE.match(request.headers.get("content-range", ""))
    upload_id = request.query_params.get("upload_id")
    if found is None or not upload_id:
        raise GoogleError(400, "A resumable upload PUT needs upload_id and Content-Range: bytes A-B/TOTAL.")
    first, total = found.group("first"), found.group("total")
    received, record = _store(request).upload_chunk(
        upload_id, int(first) if first is not None else None, await request.body(),
        int(total) if total != "*" else None)
    if record is not None:
        return JSONResponse(object_resource(record))
    return Response(status_code=308, headers={"Range": f"bytes=0-{received - 1}"} if received else {})


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """(the JSON metadata part, the media part) of a multipart/related upload body."""
    boundary = next((p.split("=", 1)[1].strip('"') for p in content_type.split(";") if "boundary=" in p),
                    None)
    if boundary is None:
        raise GoogleError(400, "A multipart upload needs a boundary in its Content-Type.")
    parts = [p for p in body.split(b"--" + boundary.encode())[1:] if not p.startswith(b"--")]
    if len(parts) != 2:
        raise GoogleError(400, f"A multipart upload has two parts (metadata, media), got {len(parts)}.")
    payloads = [part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts]
    try:
        metadata = json.loads(payloads[0])
    except json.JSONDecodeError as exc:
        raise GoogleError(400, f"The metadata part is not JSON: {exc}") from exc
    return metadata, payloads[1]


async def get_object(request: Request) -> Response:
    bucket, name = request.path_params["bucket"], request.path_params["name"]
    if request.query_params.get("alt") == "media":
        return Response(_store(request).content(bucket, name), media_type="application/octet-stream")
    return JSONResponse(object_resource(_store(request).object(bucket, name)))


# -- tuning jobs -----------------------------------------------------------------------------------

async def create_job(request: Request) -> Response:
    body, params = await _json(request), request.path_params
    _check_tuning_request(body)
    job = _store(request).create_job(params["project"], params["location"], body)
    now = _state(request).now()
    return JSONResponse(job_object(job, job.progress(now), now))


def _check_tuning_request(body: dict[str, Any]) -> None:
    model = body.get("baseModel")
    facts = model_facts("vertex", model) if isinstance(model, str) else None
    if facts is None:
        raise GoogleError(400, f"Base model {model!r} is not supported for supervised tuning.")
    if facts.retires is not None and datetime.now(UTC).date() >= facts.retires:
        # a retired model is gone at Google: the request names a model that no longer exists
        raise GoogleError(404, f"Publisher Model `publishers/google/models/{model}` was retired on "
                               f"{facts.retires}; use {' or '.join(facts.replacement) or 'a current model'}.")
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict) or not spec.get("trainingDatasetUri"):
        raise GoogleError(400, "supervisedTuningSpec.trainingDatasetUri is required.")
    hyper = spec.get("hyperParameters") or {}
    if hyper.get("adapterSize", "ADAPTER_SIZE_FOUR") not in _ADAPTER_SIZES:
        raise GoogleError(400, f"Invalid adapterSize {hyper['adapterSize']!r}; allowed: "
                               f"{', '.join(_ADAPTER_SIZES)}.")
    if int(hyper.get("epochCount") or 1) < 1 or float(hyper.get("learningRateMultiplier") or 1.0) <= 0:
        raise GoogleError(400, "epochCount must be at least 1 and learningRateMultiplier positive.")


async def list_jobs(request: Request) -> Response:
    params, query = request.path_params, request.query_params
    jobs = _store(request).list_jobs(params["project"], params["location"])
    for clause in filter(None, (c.strip() for c in query.get("filter", "").split(" AND "))):
        found = _LABEL_FILTER.match(clause)
        if found is None:
            raise GoogleError(400, f"Unsupported filter {clause!r}: the emulator filters on "
                                   "labels.KEY=\"VALUE\".")
        key, value = found.groups()
        jobs = [job for job in jobs if (job.request.get("labels") or {}).get(key) == value]
    start = int(query.get("pageToken") or 0)
    size = int(query.get("pageSize") or _PAGE_SIZE)
    now = _state(request).now()
    shown = jobs[start:start + size]
    page: dict[str, Any] = {"tuningJobs": [job_object(j, j.progress(now), now) for j in shown]}
    if start + size < len(jobs):
        page["nextPageToken"] = str(start + size)
    return JSONResponse(page)


async def get_job(request: Request) -> Response:
    job, now = _store(request).job(request.path_params["name"]), _state(request).now()
    return JSONResponse(job_object(job, job.progress(now), now))


async def cancel_job(request: Request) -> Response:
    _store(request).cancel(request.path_params["name"])
    return JSONResponse({})


# -- inference -------------------------------------------------------------------------------------

async def generate(request: Request) -> Response:
    state, model, body = _state(request), request.path_params["name"], await _json(request)
    await state.admit_completion()
    messages = chat_messages(body)
    if not any(m["role"] == "user" for m in messages):
        raise GoogleError(400, "contents must hold at least one user turn.")
    text = _imitation(state, model).reply(messages)
    limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
    tokens = list(_TOKEN.finditer(text))
    finish = "STOP"
    if isinstance(limit, int) and 0 < limit < len(tokens):
        text, finish = text[:tokens[limit - 1].end()], "MAX_TOKENS"
    state.count_completion()
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    return JSONResponse(generate_content(text, model, finish_reason=finish, prompt_tokens=prompt_tokens,
                                         output_tokens=count_tokens(text)))


def _imitation(state: EmulatorState, model: str) -> Imitation:
    """A succeeded job's endpoint answers like its training data; a publisher model generically."""
    if "/endpoints/" not in model:
        return BaseImitation()
    store = vertex_store(state)
    job = store.job_for_endpoint(model)
    if job is None:
        raise GoogleError(404, f"Endpoint {model} is not found.")
    return state.imitation("vertex", job.id, lambda: _tuned(store, job))


def _tuned(store: VertexStore, job: VertexJob) -> TunedImitation:
    lines = store.content_at(job.training_uri, "trainingDatasetUri").decode("utf-8").splitlines()
    chats = [json.dumps({"messages": chat_messages(json.loads(line))}) for line in lines if line.strip()]
    return TunedImitation.from_jsonl(chats)


def _routes() -> list[Route]:
    routes = [
        Route(f"{PREFIX}/storage/v1/b/{{bucket}}", get_bucket, methods=["GET"]),
        Route(f"{PREFIX}/upload/storage/v1/b/{{bucket}}/o", upload_object, methods=["POST"]),
        Route(f"{PREFIX}/upload/storage/v1/b/{{bucket}}/o", upload_chunk, methods=["PUT"]),
        Route(f"{PREFIX}/storage/v1/b/{{bucket}}/o/{{name:path}}", get_object, methods=["GET"]),
        Route(f"{PREFIX}/download/storage/v1/b/{{bucket}}/o/{{name:path}}", get_object, methods=["GET"]),
    ]
    for version in _VERSIONS:
        jobs = f"{PREFIX}/{version}/projects/{{project}}/locations/{{location}}/tuningJobs"
        routes += [
            Route(jobs, create_job, methods=["POST"]),
            Route(jobs, list_jobs, methods=["GET"]),
            Route(f"{PREFIX}/{version}/{{name:path}}:cancel", cancel_job, methods=["POST"]),
            Route(f"{PREFIX}/{version}/{{name:path}}:generateContent", generate, methods=["POST"]),
            Route(f"{PREFIX}/{version}/{{name:path}}", get_job, methods=["GET"]),
        ]
    return routes


ROUTES = _routes()
