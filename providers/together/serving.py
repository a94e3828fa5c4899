"""Serving a Together fine-tune on a dedicated endpoint, where the catalog says the model needs one.

Together's current fine-tuning pages serve a fine-tuned model on a dedicated endpoint, billed per minute by
its hardware while it runs (providers/together/catalog.yaml has the pages and the price). `serve` makes one
for the candidate under a display name made from the submission key (a re-run finds it, and starts it again
if it was stopped) and waits until it is STARTED; the ModelRef it returns calls the endpoint's name.
`unserve` deletes it. This uses the dedicated-endpoints v1 API (POST/GET/PATCH/DELETE /v1/endpoints), which
Together documents as supported but to be deprecated by the end of 2026 in favour of the project-based v2
API; v2 is not covered yet.
Docs: https://docs.together.ai/docs/dedicated-endpoints/v1/overview (read 2026-12-04).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import together

from providers.base import ModelRef
from providers.errors import PermanentProviderError, TransientProviderError, UnexpectedProviderResponse
from providers.together.client import NAME, translated
from providers.waiting import delays

# an endpoint's state: True serves, False failed or going away, None on its way up
ENDPOINT_STATES: dict[str, bool | None] = {"PENDING": None, "STARTING": None, "STARTED": True,
                                           "STOPPING": False, "STOPPED": False, "ERROR": False}


def serve(client: together.Together, model: ModelRef, *, name: str, hardware: str, max_replicas: int,
          wait_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep) -> ModelRef:
    """The candidate on its own dedicated endpoint (made, or found under `name` and started); the ModelRef
    to infer with. PermanentProviderError when the endpoint fails; TransientProviderError when it is not up
    after `wait_s`."""
    found = find_endpoint(client, name)
    with translated():
        if found is None:
            found = client.post("/v1/endpoints", cast_to=object, body={
                "display_name": name, "model": model.model_id, "hardware": hardware,
                "autoscaling": {"min_replicas": 1, "max_replicas": max_replicas}, "state": "STARTED"})
        elif found.get("model") != model.model_id:
            raise PermanentProviderError(NAME, f"endpoint {name} serves {found.get('model')!r}, not "
                                               f"{model.model_id!r}; delete it or change the run")
        elif found.get("state") in ("STOPPED", "STOPPING"):
            found = client.patch(f"/v1/endpoints/{found['id']}", cast_to=object, body={"state": "STARTED"})
    waits = delays(wait_s, poll_s, lambda: TransientProviderError(
        NAME, f"endpoint {name} is not up after {wait_s:g} s; run again to keep waiting (it bills per minute "
              "once started)"))
    while not _serves(found):
        sleep(next(waits))
        with translated():
            found = client.get(f"/v1/endpoints/{found['id']}", cast_to=object)
    return model.model_copy(update={"model_id": found["name"]})


def unserve(client: together.Together, served: ModelRef) -> None:
    """Delete the endpoint that serves `served` (what stops its per-minute bill); a no-op when it is gone."""
    with translated():
        endpoints = client.get("/v1/endpoints", cast_to=object, options={"params": {"type": "dedicated"}})
    for endpoint in _listed(endpoints):
        if endpoint.get("name") == served.model_id:
            try:
                with translated():
                    client.delete(f"/v1/endpoints/{endpoint['id']}", cast_to=object)
            except PermanentProviderError as exc:
                if exc.status_code != 404:
                    raise


def find_endpoint(client: together.Together, name: str) -> dict[str, Any] | None:
    """The dedicated endpoint this adapter made under the display name `name`, if any."""
    with translated():
        endpoints = client.get("/v1/endpoints", cast_to=object, options={"params": {"type": "dedicated"}})
    return next((e for e in _listed(endpoints) if e.get("display_name") == name), None)


def _listed(answer: Any) -> list[dict[str, Any]]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise UnexpectedProviderResponse(NAME, "GET /v1/endpoints: no list of endpoints")
    return [e for e in data if isinstance(e, dict)]


def _serves(endpoint: Any) -> bool:
    state = endpoint.get("state") if isinstance(endpoint, dict) else None
    if state not in ENDPOINT_STATES:
        raise UnexpectedProviderResponse(NAME, f"endpoint has unknown state {state!r}")
    if ENDPOINT_STATES[state] is False:
        raise PermanentProviderError(NAME, f"endpoint {endpoint.get('name')} is {state}")
    return bool(ENDPOINT_STATES[state])
