"""Together's dedicated endpoints (the v1 API): create, list, retrieve, start/stop, delete, and chat
completions addressed to an endpoint's name.

An endpoint serves a model (a fine-tuned output of this emulator's jobs, or a base): PENDING for a moment
after it is made (or started again), then STARTED; a chat completion names the endpoint and is answered by
the model it serves, only while it is STARTED. Saved as the `together_endpoints` section of state.json.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.state import EmulatorState
from emulator.wire import ApiError, json_body, not_found

PREFIX = "/together/v1/endpoints"
OWNER = "loraflow-emulator"


def endpoint_store(state: EmulatorState) -> EndpointStore:
    return state.store("together_endpoints", EndpointStore)


class EndpointStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._endpoints: dict[str, dict[str, Any]] = {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        model, hardware = body.get("model"), body.get("hardware")
        if not isinstance(model, str) or not model or not isinstance(hardware, str) or not hardware:
            raise ApiError(400, "model and hardware are required.", param="model")
        autoscaling = body.get("autoscaling") or {"min_replicas": 1, "max_replicas": 1}
        key = uuid.uuid4().hex
        record = {"object": "endpoint", "id": f"endpoint-{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:28]}",
                  "name": f"{OWNER}/{model.split('/')[-1]}-{key[:8]}",
                  "display_name": body.get("display_name"),
                  "model": model, "hardware": hardware, "type": "dedicated", "owner": OWNER,
                  "autoscaling": autoscaling, "started_at": self.state.now(), "stopped": False,
                  "created_at": self.state.now()}
        with self.state.lock:
            self._endpoints[record["id"]] = record
            self.state.save()
        return record

    def get(self, endpoint_id: str) -> dict[str, Any]:
        with self.state.lock:
            if endpoint_id not in self._endpoints:
                raise not_found("endpoint", endpoint_id)
            return self._endpoints[endpoint_id]

    def update(self, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
        record = self.get(endpoint_id)
        wanted = body.get("state")
        if wanted not in (None, "STARTED", "STOPPED"):
            raise ApiError(400, f"state must be STARTED or STOPPED, got {wanted!r}.", param="state")
        with self.state.lock:
            if wanted == "STARTED" and record["stopped"]:
                record.update(stopped=False, started_at=self.state.now())
            elif wanted == "STOPPED":
                record["stopped"] = True
            self.state.save()
        return record

    def delete(self, endpoint_id: str) -> None:
        self.get(endpoint_id)
        with self.state.lock:
            del self._endpoints[endpoint_id]
            self.state.save()

    def listed(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self._endpoints.values())

    def state_of(self, record: dict[str, Any]) -> str:
        if record["stopped"]:
            return "STOPPED"
        ready = record["started_at"] + self.state.file_processing_s
        return "PENDING" if self.state.now() < ready else "STARTED"

    def model_behind(self, name: str) -> str | None:
        """The model a STARTED endpoint called `name` serves; ApiError when it is not up; None when no
        endpoint has that name (the name is a model)."""
        for record in self.listed():
            if record["name"] == name:
                if self.state_of(record) != "STARTED":
                    raise ApiError(503, f"Endpoint {name} is not running.", code="endpoint_not_running")
                return record["model"]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"endpoints": list(self._endpoints.values())}

    def load(self, section: dict[str, Any] | None) -> None:
        self._endpoints = {e["id"]: e for e in (section or {}).get("endpoints", [])}


def _shown(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    hidden = ("started_at", "stopped", "created_at")
    return {**{k: v for k, v in record.items() if k not in hidden},
            "state": _store(request).state_of(record), "created_at": int(record["created_at"])}


def _store(request: Request) -> EndpointStore:
    return endpoint_store(request.app.state.emulator)


async def create(request: Request) -> Response:
    return JSONResponse(_shown(request, _store(request).create(await json_body(request))))


async def listed(request: Request) -> Response:
    kind = request.query_params.get("type")
    data = [_shown(request, r) for r in _store(request).listed() if kind in (None, r["type"])]
    return JSONResponse({"object": "list", "data": data})


async def retrieve(request: Request) -> Response:
    return JSONResponse(_shown(request, _store(request).get(request.path_params["endpoint_id"])))


async def update(request: Request) -> Response:
    record = _store(request).update(request.path_params["endpoint_id"], await json_body(request))
    return JSONResponse(_shown(request, record))


async def delete(request: Request) -> Response:
    _store(request).delete(request.path_params["endpoint_id"])
    return Response(status_code=204)


ROUTES = [
    Route(PREFIX, create, methods=["POST"]),
    Route(PREFIX, listed, methods=["GET"]),
    Route(f"{PREFIX}/{{endpoint_id}}", retrieve, methods=["GET"]),
    Route(f"{PREFIX}/{{endpoint_id}}", update, methods=["PATCH"]),
    Route(f"{PREFIX}/{{endpoint_id}}", delete, methods=["DELETE"]),
]
