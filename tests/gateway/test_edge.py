"""The gateway under hostile input: every refusal is a 4xx in OpenAI's error shape, no bare 500, and no
accepted event is lost or stored twice, whatever the body.

Raw HTTP (httpx) for bodies no SDK would send, the official openai SDK for what users see, and hypothesis for
bodies nobody thought of.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.app import Gateway, create_app
from gateway.buffer import ExposureBuffer
from gateway.routes import RouteCache
from gateway.server import build_gateway
from providers.loopback import ThreadedServer
from tasks.registry import Registry
from tasks.release.models import Arm, ModelRegistry, Route
from tasks.release.traffic import Outcome
from tests.gateway.upstream import upstream_app

KEY = "sk-edge-0123456789abcdef"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("edge")
    registry = Registry.open(f"sqlite:///{home / 'registry.db'}")
    models = ModelRegistry(registry)
    upstream = ThreadedServer(upstream_app()).start()
    for served in ("base-m", "ft-m"):
        models.register("assistant", served, base_url=f"{upstream.url}/v1")
    models.set_alias("assistant", "champion", 1, weight=1.0, reason="first release")
    models.set_alias("assistant", "challenger", 2, weight=0.5, reason="canary")
    models.start_experiment("assistant", {"ramp": [0.5]})
    gateway = build_gateway(registry, [KEY], spill_path=home / "spill.jsonl", flush_interval_s=0.05)
    gateway.max_body_bytes = 1024 * 1024
    server = ThreadedServer(create_app(gateway)).start()
    http = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    yield {"gateway": gateway, "http": http, "url": server.url, "engine": registry.engine, "home": home}
    http.close()
    server.stop()
    gateway.exposures.close()
    gateway.routes.close()
    upstream.stop()


MALFORMED = {
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"abc"',
    "JSON null": b"null",
    "not JSON": b"{model: assistant",
    "NaN": b'{"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    "Infinity": b'{"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
    "no model": json.dumps({"messages": HI}).encode(),
    "no messages": json.dumps({"model": "assistant"}).encode(),
    "empty messages": json.dumps({"model": "assistant", "messages": []}).encode(),
    "an unknown role": json.dumps({"model": "assistant", "messages": [{"role": "wizard", "content": "x"}]}
                                  ).encode(),
    "response_format as a string": json.dumps({"model": "assistant", "messages": HI,
                                               "response_format": "json_object"}).encode(),
    "user as an object": json.dumps({"model": "assistant", "messages": HI, "user": {"a": 1}}).encode(),
    "temperature as a word": json.dumps({"model": "assistant", "messages": HI, "temperature": "hot"}
                                        ).encode(),
    "temperature out of range": json.dumps({"model": "assistant", "messages": HI, "temperature": 7}).encode(),
    "stream as a string": json.dumps({"model": "assistant", "messages": HI, "stream": "yes"}).encode(),
    "an unknown alias": json.dumps({"model": "assistant@staging", "messages": HI}).encode(),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_completion_request_is_a_400_in_openais_shape(edge, case: str) -> None:
    answer = edge["http"].post("/v1/chat/completions", content=MALFORMED[case],
                               headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_feedback_refuses_nan_and_wrong_types_and_accepts_the_rest(edge) -> None:
    bad = [b'{"request_id": "r1", "type": "thumbs_up", "value": NaN}',
           json.dumps({"request_id": "r1", "type": "thumbs_up", "user": {"a": 1}}).encode(),
           json.dumps({"request_id": "r1", "type": "stars"}).encode(),
           json.dumps({"request_id": 5, "type": "thumbs_up"}).encode(),
           json.dumps({"request_id": "r1", "type": "thumbs_up", "value": "4"}).encode()]
    for body in bad:
        answer = edge["http"].post("/v1/feedback", content=body)
        assert answer.status_code == 400, (body, answer.text)
    accepted = edge["http"].post("/v1/feedback", json={"request_id": "r-ok", "type": "judge_score",
                                                       "value": 4.5, "user": "dana"})
    assert accepted.status_code == 202
    assert edge["gateway"].exposures.flush()
    with edge["engine"].connect() as connection:
        assert connection.execute(select(Outcome.value).where(Outcome.request_id == "r-ok")).scalar() == 4.5


def test_a_body_over_the_limit_is_a_413_and_is_not_read_whole(edge) -> None:
    huge = b'{"model": "assistant", "messages": [{"role": "user", "content": "' + b"x" * (2 << 20) + b'"}]}'
    answer = edge["http"].post("/v1/chat/completions", content=huge,
                               headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit holds while reading
        yield huge[:1000]
        yield huge[1000:]

    answer = edge["http"].post("/v1/chat/completions", content=chunks())
    assert answer.status_code == 413


def test_the_openai_sdk_sees_models_errors_and_answers(edge) -> None:
    client = openai.OpenAI(base_url=f"{edge['url']}/v1", api_key=KEY, max_retries=0)
    assert {"assistant", "assistant@champion", "assistant@challenger"} <= {m.id for m in client.models.list()}
    assert client.models.retrieve("assistant").id == "assistant"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{edge['url']}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="assistant", messages=HI, temperature=9)
    with pytest.raises(openai.BadRequestError, match="user"):
        client.chat.completions.create(model="assistant", messages=HI, extra_body={"user": {"a": 1}})
    answer = client.chat.completions.create(model="assistant", messages=HI, user="erin")
    assert answer.choices[0].message.content.startswith("hello from")


def test_unknown_routes_and_methods_answer_in_openais_shape(edge) -> None:
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", "/v1/chat/completions", 405)):
        answer = edge["http"].request(method, path)
        assert answer.status_code == status and "error" in answer.json()


def test_wrong_model_names_are_remembered_not_reloaded_at_every_refresh() -> None:
    """Each distinct wrong name a client sent used to join the routes reloaded every second; now it is looked
    up once, and the registry's list of names tells when it appears."""
    registered, loads = {"assistant"}, []

    def load(name: str) -> Route | None:
        loads.append(name)
        return Route(name, Arm(1, "m", None, None, None)) if name in registered else None

    routes = RouteCache(load, names=lambda: sorted(registered))
    routes.refresh()
    assert [routes.get(f"typo-{i}") for i in range(100)] == [None] * 100
    assert all(routes.cached(f"typo-{i}") for i in range(100))
    loads.clear()
    routes.refresh()
    assert loads == ["assistant"]
    registered.add("typo-7")  # registered later: routed from the next refresh on
    routes.refresh()
    assert routes.get("typo-7") is not None and routes.get("typo-8") is None


def test_an_unexpected_exception_is_a_500_with_an_incident_id_not_a_bare_page(tmp_path: Path) -> None:
    def load(name: str):
        raise RuntimeError("a bug")

    gateway = Gateway(routes=RouteCache(load), exposures=ExposureBuffer(lambda events: None,
                                                                        tmp_path / "spill.jsonl"),
                      api_keys=frozenset({KEY}))
    server = ThreadedServer(create_app(gateway)).start()
    try:
        answer = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "m", "messages": HI},
                            headers={"authorization": f"Bearer {KEY}"})
    finally:
        server.stop()
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"
    assert answer.headers["x-loraflow-incident"] in answer.json()["error"]["message"]


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(_scalars,
                     lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                       children, max_size=3),
                     max_leaves=10)
_bodies = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["assistant", "assistant@challenger", "nobody", ""]) | _json,
    "messages": st.just(HI) | _json, "user": st.text(max_size=10) | _json, "stream": st.booleans() | _json,
    "temperature": st.floats() | _json, "response_format": st.just({"type": "json_object"}) | _json})
_feedback = st.fixed_dictionaries({}, optional={
    "request_id": st.text(min_size=1, max_size=10) | _json,
    "type": st.sampled_from(["thumbs_up", "edit"]) | _json,
    "value": st.floats(allow_nan=False) | _json, "user": st.text(max_size=5) | _json})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, told=_feedback)
def test_no_body_gets_a_5xx_and_every_accepted_event_is_stored_once(edge, body, told) -> None:
    answer = edge["http"].post("/v1/chat/completions", content=json.dumps(body, allow_nan=True),
                               headers={"content-type": "application/json"})
    assert answer.status_code < 500 or answer.status_code in (502, 503), answer.text
    assert "error" in answer.json() if answer.status_code >= 400 else True
    sent = edge["http"].post("/v1/feedback", content=json.dumps(told, allow_nan=True))
    assert sent.status_code in (202, 400), sent.text
    if sent.status_code == 202:
        edge["accepted"] = [*edge.get("accepted", []), sent.json()["id"]]


def test_the_accepted_feedback_of_the_property_run_is_stored_once_or_dead_lettered(edge) -> None:
    """Runs after the property test in this module: its accepted outcomes, all of them, exactly once."""
    accepted = edge.get("accepted", [])
    assert edge["gateway"].exposures.flush(30)
    with edge["engine"].connect() as connection:
        stored = connection.execute(select(Outcome.id, func.count()).where(Outcome.id.in_(accepted))
                                    .group_by(Outcome.id)).all()
    dead = edge["gateway"].exposures.dead_letter_path
    dead_ids = {json.loads(line)["event"].get("id") for line in dead.read_text().splitlines()} \
        if dead.exists() else set()
    assert all(count == 1 for _, count in stored)
    assert {outcome for outcome, _ in stored} | dead_ids >= set(accepted)
    assert accepted, "the property run accepted no feedback: its strategy is broken"
