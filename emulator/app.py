"""The ASGI app, the one module that assembles every vendor: the OpenAI (/v1), Together (/together),
Vertex (/vertex), Bedrock (/bedrock) and Azure OpenAI (/azure) routes of `emulator/<vendor>/api.py` behind
request counting, fault injection and the API-key check (Together's presigned upload URLs carry a token
instead of the key; Bedrock requests are SigV4-signed, and bedrock/api.py checks the access key id; Azure
takes an `api-key` header, and azure_openai/api.py checks it).

Order matters: every API request is counted first (so a test sees retries of a faulted request),
then faults apply, then the key is checked. Control routes under `/_emulator` skip all three:

    GET    /_emulator/health               {"status": "ok", "apis": {provider: the base URL path of its API}}
    GET    /_emulator/counters             EmulatorState.counters; DELETE resets them
    GET    /_emulator/faults               the live rules; POST adds a rule, a list, or {"rules": [...]};
                                           DELETE removes them all
    GET    /_emulator/timeline             the default timeline for new jobs; PUT replaces it (missing
                                           fields take Timeline's defaults)
    GET    /_emulator/serving              {"latency_s", "requests_per_minute"} for chat completions; PUT
                                           replaces both (a missing field means none)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from emulator.azure_openai import api as azure_api
from emulator.bedrock import api as bedrock_api
from emulator.faults import FaultMiddleware
from emulator.openai import api as openai_api
from emulator.state import EmulatorState
from emulator.timeline import Timeline
from emulator.together import api as together_api
from emulator.vertex import api as vertex_api
from emulator.wire import ApiError, json_body

CONTROL_PREFIX = "/_emulator"
ROUTES = [*openai_api.ROUTES, *together_api.ROUTES, *vertex_api.ROUTES, *bedrock_api.ROUTES,
          *azure_api.ROUTES]
# what each SDK's base_url is, below the server's URL (served by /_emulator/health for tasks/connection.py)
API_ROOTS = {"openai": "/v1", "together": together_api.PREFIX, "vertex": vertex_api.PREFIX,
             "bedrock": bedrock_api.PREFIX, "azure_openai": azure_api.PREFIX}


def build_app(state: EmulatorState, api_key: str | None = None) -> Starlette:
    """The emulator as an ASGI app over `state`; requests need `Bearer <api_key>` when one is given."""
    app = Starlette(
        routes=[*ROUTES, *_CONTROL_ROUTES],
        middleware=[
            Middleware(_CountRequests, state=state, routes=ROUTES),
            Middleware(FaultMiddleware, faults=state.faults, exempt_prefix=CONTROL_PREFIX),
            Middleware(_RequireKey, api_key=api_key,
                       exempt=(CONTROL_PREFIX, together_api.UPLOADS, bedrock_api.PREFIX, azure_api.PREFIX)),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.emulator = state
    app.state.api_key = api_key  # bedrock/api.py compares it with the SigV4 access key id
    return app


class _CountRequests:
    def __init__(self, app: Any, state: EmulatorState, routes: list[BaseRoute]) -> None:
        self.app, self.state, self.routes = app, state, routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            self.state.count_request(f"{scope['method']} {self._template(scope)}")
        await self.app(scope, receive, send)

    def _template(self, scope: dict) -> str:
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path
            if match == Match.PARTIAL and partial is None:
                partial = route.path
        return partial or scope["path"]


class _RequireKey:
    def __init__(self, app: Any, api_key: str | None, exempt: tuple[str, ...]) -> None:
        self.app, self.api_key, self.exempt = app, api_key, exempt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.api_key is not None and scope["type"] == "http" and not scope["path"].startswith(self.exempt):
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if given != f"Bearer {self.api_key}":
                shown = given.removeprefix("Bearer ")[:4] + "****"
                error = ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
                await (await _api_error(None, error))(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _api_error(request: Request | None, exc: ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    # the service answers unknown routes with its usual error envelope, not starlette's plain text
    unknown = exc.status_code in (404, 405)
    message = f"Invalid URL ({request.method} {request.url.path})" if unknown else exc.detail
    return JSONResponse(ApiError(exc.status_code, message).body(), status_code=exc.status_code)


def _emulator(request: Request) -> EmulatorState:
    return request.app.state.emulator


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "apis": API_ROOTS})


async def _counters(request: Request) -> Response:
    if request.method == "DELETE":
        _emulator(request).reset_counters()
    return JSONResponse(_emulator(request).counters)


async def _faults(request: Request) -> Response:
    faults = _emulator(request).faults
    if request.method == "DELETE":
        faults.clear()
    elif request.method == "POST":
        try:
            body = json.loads(await request.body())
            rules = body if isinstance(body, list) else body.get("rules", [body])
            faults.add(*rules)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ApiError(400, f"Invalid fault rule: {exc}", param="rules") from exc
    return JSONResponse({"rules": [rule.to_dict() for rule in faults.rules]})


async def _timeline(request: Request) -> Response:
    state = _emulator(request)
    if request.method == "PUT":
        try:
            state.set_timeline(Timeline.from_dict(await json_body(request)))
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"Invalid timeline: {exc}") from exc
    return JSONResponse(state.timeline.to_dict())


async def _serving(request: Request) -> Response:
    state = _emulator(request)
    if request.method == "PUT":
        body = await json_body(request)
        try:
            state.set_serving(**body)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"Invalid serving settings: {exc}") from exc
    return JSONResponse(asdict(state.serving.settings))


_CONTROL_ROUTES = [
    Route(f"{CONTROL_PREFIX}/health", _health, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/counters", _counters, methods=["GET", "DELETE"]),
    Route(f"{CONTROL_PREFIX}/faults", _faults, methods=["GET", "POST", "DELETE"]),
    Route(f"{CONTROL_PREFIX}/timeline", _timeline, methods=["GET", "PUT"]),
    Route(f"{CONTROL_PREFIX}/serving", _serving, methods=["GET", "PUT"]),
]
