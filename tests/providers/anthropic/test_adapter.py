"""The anthropic chat model at the transport level (httpx2.MockTransport: the SDK is built on httpx2)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable

import anthropic
import httpx2
import pytest
from anthropic.types import StopReason

from providers.anthropic.adapter import FINISH_REASONS, AnthropicChat, to_request
from providers.base import ChatModel, Decoding, ModelRef, Provider
from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

MODEL = ModelRef(provider="anthropic", model_id="claude-haiku-4-5-20251001",
                 base_model="claude-haiku-4-5-20251001")


def chat_for(handler: Callable[[httpx2.Request], httpx2.Response]) -> AnthropicChat:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="https://api.anthropic.test", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    return AnthropicChat(client)


def message(text: str = '{"score": 5}', stop_reason: str = "end_turn") -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL.model_id,
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 42, "output_tokens": 7}}


def test_infer_sends_system_apart_and_no_sampling_parameters() -> None:
    seen: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json=message())

    messages = [{"role": "system", "content": "Be fair."}, {"role": "user", "content": "first"},
                {"role": "user", "content": "second"}]
    completion = chat_for(handler).infer(MODEL, messages, Decoding(temperature=0, seed=3, max_tokens=99,
                                                                   stop=["END"]))
    body = seen[0]
    assert body["model"] == MODEL.model_id and body["max_tokens"] == 99 and body["system"] == "Be fair."
    assert body["messages"] == [{"role": "user", "content": "first\n\nsecond"}]
    assert body["stop_sequences"] == ["END"]
    assert not {"temperature", "top_p", "top_k", "seed"} & set(body)
    assert (completion.text, completion.finish_reason, completion.prompt_tokens,
            completion.completion_tokens) == ('{"score": 5}', "stop", 42, 7)
    assert completion.model_id == MODEL.model_id and completion.latency_ms > 0


def test_it_is_a_chat_model_not_a_training_provider() -> None:
    chat = chat_for(lambda request: httpx2.Response(200, json=message()))
    assert isinstance(chat, ChatModel) and not isinstance(chat, Provider)


def test_the_finish_table_covers_every_stop_reason_the_sdk_knows() -> None:
    assert set(FINISH_REASONS) == set(typing.get_args(StopReason))
    truncated = chat_for(lambda request: httpx2.Response(200, json=message("cut", "max_tokens")))
    assert truncated.infer(MODEL, [{"role": "user", "content": "q"}], Decoding()).finish_reason == "length"
    odd = chat_for(lambda request: httpx2.Response(200, json=message("x", "sleepy")))
    with pytest.raises(UnexpectedProviderResponse, match="unknown stop_reason 'sleepy'"):
        odd.infer(MODEL, [{"role": "user", "content": "q"}], Decoding())


@pytest.mark.parametrize(("status", "error"), [
    (400, PermanentProviderError), (401, PermanentProviderError), (403, PermanentProviderError),
    (404, PermanentProviderError), (413, PermanentProviderError), (408, TransientProviderError),
    (409, TransientProviderError), (429, TransientProviderError), (500, TransientProviderError),
    (529, TransientProviderError),
])
def test_http_errors_map_to_the_error_tree(status: int, error: type) -> None:
    body = {"type": "error", "error": {"type": "x", "message": "nope"}}
    chat = chat_for(lambda request: httpx2.Response(status, json=body, headers={"retry-after": "7"}))
    with pytest.raises(error) as raised:
        chat.infer(MODEL, [{"role": "user", "content": "q"}], Decoding())
    assert raised.value.status_code == status and "nope" in str(raised.value)
    if error is TransientProviderError:
        assert raised.value.retry_after == 7.0


def test_retry_after_ms_wins_and_connection_errors_are_transient() -> None:
    headers = {"retry-after-ms": "250", "retry-after": "1"}
    chat = chat_for(lambda request: httpx2.Response(429, json={"error": {"message": "slow down"}},
                                                    headers=headers))
    with pytest.raises(TransientProviderError) as raised:
        chat.infer(MODEL, [{"role": "user", "content": "q"}], Decoding())
    assert raised.value.retry_after == 0.25

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    with pytest.raises(TransientProviderError, match="connection failed"):
        chat_for(refuse).infer(MODEL, [{"role": "user", "content": "q"}], Decoding())


def test_a_malformed_body_is_unexpected() -> None:
    chat = chat_for(lambda request: httpx2.Response(200, json={"content": "not blocks"}))
    with pytest.raises(UnexpectedProviderResponse):
        chat.infer(MODEL, [{"role": "user", "content": "q"}], Decoding())


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable ANTHROPIC_API_KEY"):
        AnthropicChat.from_options({})
    with pytest.raises(ConfigError, match="options.timeout: unknown key"):
        AnthropicChat.from_options({"timeout": 3}, api_key="k")
    assert AnthropicChat.from_options({}, api_key="k", base_url="http://127.0.0.1:9").client.max_retries == 2
    with pytest.raises(ConfigError, match="role 'tool' is not supported"):
        to_request([{"role": "tool", "content": "x"}])
    with pytest.raises(ConfigError, match="content must be text"):
        to_request([{"role": "user", "content": [{"type": "image"}]}])
