"""An OpenAI-compatible `/v1/chat/completions` where `model` names a registered model (or `name@alias`).

The arm comes from a sticky hash of the user (the request's `user` field or the `X-Loraflow-User` header) and
the running experiment's salt; the exposure is buffered the moment the arm is chosen, before the upstream
call, and the call's measurements follow as a `result` event. A challenger whose upstream fails is retried on
the champion and still logged as treatment (intention to treat) with `fallback`. `/v1/feedback` records
outcomes.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as Path

from gateway.buffer import ExposureBuffer
from gateway.capture import Capture
from gateway.requests import (
    MAX_BODY_BYTES,
    ChatRequest,
    FeedbackRequest,
    Refused,
    error_response,
    parse,
    read_json,
)
from gateway.routes import RouteCache
from tasks.release.ab import arm_for, bucket
from tasks.release.models import Arm, Route

USER_HEADER = "x-loraflow-user"
ASSIGNED_CACHE = 200_000
log = logging.getLogger("loraflow.gateway")


@dataclass
class Gateway:
    """Everything a request needs; `default_base_url` serves versions registered without their own
    base URL."""

    routes: RouteCache
    exposures: ExposureBuffer
    api_keys: frozenset[str]
    default_base_url: str | None = None
    upstream_api_key: str | None = None
    timeout_s: float = 120.0
    max_body_bytes: int = MAX_BODY_BYTES
    capture: Capture | None = None  # opt-in: served exchanges as chat JSONL (gateway/capture.py)
    client: aiohttp.ClientSession = field(init=False)
    # units already assigned, most recent last; bounded because the store ignores a repeated assignment anyway
    _assigned: OrderedDict[tuple[int, str], None] = field(default_factory=OrderedDict)

    def authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and any(hmac.compare_digest(token, key) for key in self.api_keys)

    def upstream(self, arm: Arm) -> str:
        base = arm.base_url or self.default_base_url
        if not base:
            raise LookupError(f"version {arm.version} has no base URL and the gateway has no "
                              "default upstream")
        return base.rstrip("/") + "/chat/completions"


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return error_response(status, message, kind)


@dataclass
class _Call:
    request_id: str
    arm: str | None
    route: Route
    chosen: Arm
    started: float = field(default_factory=time.perf_counter)


def choose(gateway: Gateway, route: Route, pinned: str | None, unit: str | None, request_id: str) -> _Call:
    """Pick the arm and buffer the exposure (and the unit's first assignment) right away."""
    if pinned is not None or route.challenger is None:
        arm = route.challenger if pinned == "challenger" and route.challenger else route.champion
        return _Call(request_id, None, route, arm)
    # no experiment, or an anonymous caller: champion, unlogged
    if route.experiment_id is None or unit is None:
        return _Call(request_id, None, route, route.champion)
    where = bucket(route.experiment_key, route.salt, unit)
    arm = arm_for(where, route.weight)
    now = time.time()
    if (route.experiment_id, unit) in gateway._assigned:
        gateway._assigned.move_to_end((route.experiment_id, unit))
    else:
        gateway._assigned[(route.experiment_id, unit)] = None
        if len(gateway._assigned) > ASSIGNED_CACHE:
            gateway._assigned.popitem(last=False)
        gateway.exposures.add({"kind": "assignment", "experiment_id": route.experiment_id, "unit_id": unit,
                               "arm": arm, "bucket": where, "first_assigned_at": now})
    chosen = route.challenger if arm == "treatment" else route.champion
    gateway.exposures.add({"kind": "exposure", "request_id": request_id, "experiment_id": route.experiment_id,
                           "unit_id": unit, "arm": arm, "served_model": chosen.served_name, "fallback": False,
                           "ts": now})
    return _Call(request_id, arm, route, chosen)


def measured(call: _Call, status: int, body: dict[str, Any] | None, wants_json: bool, *,
             ttft_ms: float | None, served: Arm, fallback: bool) -> dict[str, Any]:
    """The `result` event of a finished call: latency, tokens, cost, status, schema validity, refusal."""
    usage = (body or {}).get("usage") or {}
    choice = ((body or {}).get("choices") or [{}])[0]
    message = choice.get("message") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    cost = None
    if prompt is not None and completion is not None and served.price_in_per_mtok is not None:
        cost = (prompt * served.price_in_per_mtok + completion * (served.price_out_per_mtok or 0.0)) / 1e6
    schema_valid = None
    if wants_json and status < 400:
        try:
            json.loads(message.get("content") or "")
            schema_valid = True
        except ValueError:
            schema_valid = False
    refusal = (bool(message.get("refusal")) or choice.get("finish_reason") == "content_filter"
               if body else None)
    return {"kind": "result", "request_id": call.request_id, "http_status": status, "ttft_ms": ttft_ms,
            "latency_ms": (time.perf_counter() - call.started) * 1000, "prompt_tokens": prompt,
            "completion_tokens": completion, "cost_usd": cost, "schema_valid": schema_valid,
            "refusal": refusal, "served_model": served.served_name, "fallback": fallback}


def _headers(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.upstream_api_key}"} if gateway.upstream_api_key else {}


def _tags(call: _Call, served: Arm) -> dict[str, str]:
    return {"x-loraflow-request-id": call.request_id, "x-loraflow-arm": call.arm or "none",
            "x-loraflow-version": str(served.version)}


async def _open(gateway: Gateway, arm: Arm, body: dict[str, Any]) -> aiohttp.ClientResponse | None:
    """The upstream's response with its body unread, or None when it could not be reached."""
    try:
        return await gateway.client.post(gateway.upstream(arm), json={**body, "model": arm.served_name},
                                         headers=_headers(gateway))
    except (aiohttp.ClientError, TimeoutError, LookupError):
        return None


async def _open_with_fallback(gateway: Gateway, call: _Call, body: dict[str, Any]
                              ) -> tuple[aiohttp.ClientResponse | None, Arm, bool]:
    """A challenger that cannot answer (unreachable or 5xx) is retried once on the champion."""
    answer = await _open(gateway, call.chosen, body)
    if call.arm != "treatment" or (answer is not None and answer.status < 500):
        return answer, call.chosen, False
    if answer is not None:
        answer.release()
    return await _open(gateway, call.route.champion, body), call.route.champion, True


async def _complete(gateway: Gateway, call: _Call, body: dict[str, Any], wants_json: bool) -> Response:
    answer, served, fallback = await _open_with_fallback(gateway, call, body)
    try:
        content = await answer.read() if answer is not None else None
    except (aiohttp.ClientError, TimeoutError):
        content = None
    if answer is None or content is None:
        if call.arm is not None:
            gateway.exposures.add(measured(call, 502, None, wants_json, ttft_ms=None, served=served,
                                           fallback=fallback))
        return _error(502, f"upstream for version {served.version} unreachable", "upstream_error")
    try:
        parsed = json.loads(content) if answer.content_type == "application/json" else None
    except ValueError:
        parsed = None
    if call.arm is not None:
        gateway.exposures.add(measured(call, answer.status, parsed, wants_json, ttft_ms=None, served=served,
                                       fallback=fallback))
    if gateway.capture is not None and parsed is not None and answer.status < 400:
        gateway.capture.add(call.request_id, body, parsed)
    return Response(content, answer.status, media_type="application/json", headers=_tags(call, served))


async def _stream(gateway: Gateway, call: _Call, body: dict[str, Any], wants_json: bool) -> Response:
    upstream, served, fallback = await _open_with_fallback(gateway, call, body)
    if upstream is None:
        if call.arm is not None:
            gateway.exposures.add(measured(call, 502, None, wants_json, ttft_ms=None, served=served,
                                           fallback=fallback))
        return _error(502, f"upstream for version {served.version} unreachable", "upstream_error")
    return StreamingResponse(_relay(gateway, call, upstream, served, fallback, wants_json), upstream.status,
                             media_type="text/event-stream", headers=_tags(call, served))


async def _relay(gateway: Gateway, call: _Call, upstream: aiohttp.ClientResponse, served: Arm, fallback: bool,
                 wants_json: bool) -> AsyncIterator[bytes]:
    """Pass the events through untouched while noting the first token, the text and the usage."""
    ttft, text, usage, finish, buffer = None, [], None, None, b""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                    continue
                try:
                    event = json.loads(line[6:])
                except ValueError:  # not ours to judge: the client gets the bytes as they came
                    continue
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece and ttft is None:
                        ttft = (time.perf_counter() - call.started) * 1000
                    text.append(piece or "")
                    finish = choice.get("finish_reason") or finish
                usage = event.get("usage") or usage
    finally:
        upstream.release()
        if call.arm is not None:
            whole = {"usage": usage,
                     "choices": [{"message": {"content": "".join(text)}, "finish_reason": finish}]}
            gateway.exposures.add(measured(call, upstream.status, whole, wants_json, ttft_ms=ttft,
                                           served=served, fallback=fallback))


async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if not gateway.authorised(request):
        return _error(401, "missing or unknown API key", "authentication_error")
    try:
        body = await read_json(request, gateway.max_body_bytes)
        asked = parse(ChatRequest, body)
    except Refused as refused:
        return refused.response()
    name, _, pinned = asked.model.partition("@")
    if pinned and pinned not in ("champion", "challenger"):
        return error_response(400, f"alias {pinned!r}: allowed values: champion, challenger", param="model")
    try:
        route = await _route(gateway, name)
    except SQLAlchemyError:  # the registry is down and this name was never loaded
        return _error(503, f"model {name!r} cannot be looked up right now", "service_unavailable")
    if route is None:
        return _error(404, f"model {name!r} has no champion in the registry", "not_found_error")
    unit = asked.user or request.headers.get(USER_HEADER)
    call = choose(gateway, route, pinned or None, unit, uuid.uuid4().hex)
    wants_json = asked.response_format is not None and asked.response_format.type.startswith("json")
    if asked.stream:
        return await _stream(gateway, call, body, wants_json)
    return await _complete(gateway, call, body, wants_json)


async def _route(gateway: Gateway, name: str) -> Route | None:
    """From memory; a name never seen before is loaded in a worker thread, so the event loop never waits
    on the database."""
    if gateway.routes.cached(name):
        return gateway.routes.get(name)
    return await run_in_threadpool(gateway.routes.get, name)


async def feedback(request: Request) -> Response:
    """`{"request_id", "type", "value"?, "source"?, "user"?}` -> 202 with the outcome's id. The event is
    checked in full here: what is accepted can be written."""
    gateway: Gateway = request.app.state.gateway
    if not gateway.authorised(request):
        return _error(401, "missing or unknown API key", "authentication_error")
    try:
        told = parse(FeedbackRequest, await read_json(request, gateway.max_body_bytes))
    except Refused as refused:
        return refused.response()
    outcome_id = uuid.uuid4().hex
    gateway.exposures.add({"kind": "outcome", "id": outcome_id, "request_id": told.request_id,
                           "type": told.type, "value": told.value, "source": told.source, "ts": time.time(),
                           "unit_id": told.user})
    return JSONResponse({"id": outcome_id}, 202)


async def list_models(request: Request) -> Response:
    """OpenAI's model list: every registered name and its `NAME@champion` / `NAME@challenger` aliases."""
    gateway: Gateway = request.app.state.gateway
    if not gateway.authorised(request):
        return _error(401, "missing or unknown API key", "authentication_error")
    return JSONResponse({"object": "list", "data": [_model(i) for i in gateway.routes.model_ids()]})


async def get_model(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if not gateway.authorised(request):
        return _error(401, "missing or unknown API key", "authentication_error")
    wanted = request.path_params["model"]
    if wanted not in gateway.routes.model_ids():
        return error_response(404, f"model {wanted!r} is not registered", "not_found_error", param="model",
                              code="model_not_found")
    return JSONResponse(_model(wanted))


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "loraflow"}


async def health(request: Request) -> Response:
    """Liveness and the event pipeline's state: a database outage shows here, not in request latency."""
    events = request.app.state.gateway.exposures
    return JSONResponse({"ok": True, "pending_exposures": events.pending,
                         "dead_lettered": events.dead_lettered,
                         "database": "unavailable" if events.failing_since else "ok",
                         "unavailable_since": events.failing_since, "write_failures": events.failures})


def create_app(gateway: Gateway) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # aiohttp rather than httpx for the upstream: about half the gateway's CPU per request
        # went to httpx's pool
        gateway.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=gateway.timeout_s),
                                               connector=aiohttp.TCPConnector(limit=512))
        try:
            yield
        finally:
            await gateway.client.close()

    app = Starlette(routes=[Path("/v1/chat/completions", chat_completions, methods=["POST"]),
                            Path("/v1/feedback", feedback, methods=["POST"]),
                            Path("/v1/models", list_models, methods=["GET"]),
                            Path("/v1/models/{model:path}", get_model, methods=["GET"]),
                            Path("/healthz", health)],
                    lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.gateway = gateway
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in OpenAI's shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    return error_response(status, f"{request.method} {request.url.path}: {getattr(exc, 'detail', exc)}",
                          "not_found_error" if status == 404 else "invalid_request_error")


async def _internal_error(request: Request, exc: Exception) -> Response:
    """No exception reaches a client as a bare 500: OpenAI's error body with an id to find the traceback."""
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error {incident}; the gateway's log has its traceback",
                          "server_error", code="internal_error", headers={"x-loraflow-incident": incident})
