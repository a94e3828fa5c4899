"""The emulator's serving knobs for chat completions: a latency that blocks nobody else, a token-bucket
limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest

from emulator import EmulatorServer
from emulator.serving import Serving, ServingSettings
from providers.base import Decoding, ModelRef
from providers.errors import TransientProviderError
from providers.openai.adapter import OpenAIProvider

BASE = "gpt-4o-mini-2024-07-18"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _plain_serving(server: EmulatorServer) -> Iterator[None]:
    yield
    server.state.set_serving()


def client_for(server: EmulatorServer, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=retries)


def test_the_bucket_admits_one_seconds_worth_then_says_when_to_come_back() -> None:
    now = [100.0]
    serving = Serving(ServingSettings(requests_per_minute=600), clock=lambda: now[0])

    assert [serving.admit() for _ in range(10)] == [None] * 10
    assert serving.admit() == pytest.approx(0.1)
    now[0] += 0.05
    assert serving.admit() == pytest.approx(0.05)
    now[0] += 0.05
    assert serving.admit() is None
    now[0] += 60
    assert [serving.admit() for _ in range(11)].count(None) == 10  # a long pause refills one second, not more


def test_a_low_limit_still_admits_one_request_at_a_time() -> None:
    now = [0.0]
    serving = Serving(ServingSettings(requests_per_minute=30), clock=lambda: now[0])
    assert serving.admit() is None
    assert serving.admit() == pytest.approx(2.0)
    now[0] += 2.0
    assert serving.admit() is None


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="latency_s"):
        ServingSettings(latency_s=-1)
    with pytest.raises(ValueError, match="requests_per_minute"):
        ServingSettings(requests_per_minute=0)


def test_over_the_limit_is_a_429_with_retry_after_and_the_sdk_waits_it_out(server: EmulatorServer) -> None:
    server.state.set_serving(requests_per_minute=60)
    client = client_for(server)
    before = server.state.counters

    client.chat.completions.create(model=BASE, messages=HELLO)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=BASE, messages=HELLO)

    headers = limited.value.response.headers
    assert headers["retry-after"] == "1" and 900 <= int(headers["retry-after-ms"]) <= 1000
    assert headers["x-ratelimit-limit-requests"] == "60" and limited.value.code == "rate_limit_exceeded"
    after = server.state.counters
    assert after["rate_limited"] - before["rate_limited"] == 1
    assert after["completions"] - before["completions"] == 1
    assert client_for(server, retries=2).chat.completions.create(model=BASE, messages=HELLO).choices


def test_the_adapter_sees_a_transient_error_carrying_the_hint(server: EmulatorServer) -> None:
    server.state.set_serving(requests_per_minute=60)
    provider = OpenAIProvider(client_for(server))
    base = ModelRef(provider="openai", model_id=BASE, base_model=BASE)
    provider.infer(base, HELLO, Decoding())
    with pytest.raises(TransientProviderError) as limited:
        provider.infer(base, HELLO, Decoding())
    assert limited.value.status_code == 429 and 0.9 <= limited.value.retry_after <= 1.0


def test_latency_delays_each_answer_without_queueing_the_others(server: EmulatorServer) -> None:
    server.state.latency_s = 0.4
    client = client_for(server)

    started = time.monotonic()
    client.chat.completions.create(model=BASE, messages=HELLO)
    single = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = time.monotonic()
        replies = list(pool.map(lambda _: client.chat.completions.create(model=BASE, messages=HELLO),
                                range(8)))
        together = time.monotonic() - started

    assert single >= 0.4 and len(replies) == 8
    assert together < 0.4 * 8 / 2  # served one after another it would take 3.2 s


def test_latency_applies_to_chat_completions_only(server: EmulatorServer) -> None:
    server.state.set_serving(latency_s=1.0, requests_per_minute=1)
    started = time.monotonic()
    client_for(server).files.list()
    client_for(server).files.list()
    assert time.monotonic() - started < 1.0


def test_settings_are_attributes_methods_and_a_control_route(server: EmulatorServer) -> None:
    previous = server.state.set_serving(latency_s=0.2, requests_per_minute=600)
    assert previous == ServingSettings()
    assert (server.state.latency_s, server.state.requests_per_minute) == (0.2, 600)
    server.state.requests_per_minute = None
    assert server.state.serving.settings == ServingSettings(latency_s=0.2)

    with httpx2.Client(base_url=f"{server.url}/_emulator") as control:
        assert control.get("/serving").json() == {"latency_s": 0.2, "requests_per_minute": None}
        assert control.put("/serving", json={"requests_per_minute": 120}).json() == {
            "latency_s": 0.0, "requests_per_minute": 120}
        assert control.put("/serving", json={"latency_s": -2}).status_code == 400
        assert control.put("/serving", json={"speed": 2}).status_code == 400
    assert server.state.requests_per_minute == 120


def test_the_constructor_takes_the_settings() -> None:
    with EmulatorServer(latency_s=0.05, requests_per_minute=6000) as configured:
        assert configured.state.serving.settings == ServingSettings(0.05, 6000)
