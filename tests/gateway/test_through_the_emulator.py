"""The gateway's plain and streamed paths end to end offline, with the emulator as the upstream and the
official openai SDK as the client, as the README runs it."""

from __future__ import annotations

import openai
import pytest

from emulator import EmulatorServer
from gateway.app import create_app
from gateway.server import build_gateway
from providers.loopback import ThreadedServer
from tasks.registry import Registry
from tasks.release.models import ModelRegistry
from tasks.release.traffic import TrafficStore

KEY = "sk-through-0123456789"
BASE = "gpt-4o-mini-2024-07-18"
HI = [{"role": "user", "content": "Plan a team offsite."}]


@pytest.fixture(scope="module")
def through(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("through")
    with EmulatorServer(api_key="emulator-key") as upstream:
        registry = Registry.open(f"sqlite:///{home / 'registry.db'}")
        models = ModelRegistry(registry)
        for served in (BASE, "gpt-4.1-mini-2025-04-14"):
            models.register("planner", served, base_url=upstream.base_url_for("openai"))
        models.set_alias("planner", "champion", 1, weight=1.0, reason="first")
        models.set_alias("planner", "challenger", 2, weight=0.5, reason="canary")
        models.start_experiment("planner", {"ramp": [0.5]})
        gateway = build_gateway(registry, [KEY], upstream_api_key="emulator-key",
                                spill_path=home / "spill.jsonl", flush_interval_s=0.05)
        server = ThreadedServer(create_app(gateway)).start()
        yield {"client": openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0),
               "emulator": openai.OpenAI(base_url=upstream.base_url_for("openai"), api_key="emulator-key"),
               "gateway": gateway, "store": TrafficStore(registry.engine)}
        server.stop()
        gateway.exposures.close()
        gateway.routes.close()


def test_a_streamed_answer_comes_word_by_word_with_usage_and_is_measured(through) -> None:
    stream = through["client"].chat.completions.create(model="planner", messages=HI, user="fay", stream=True,
                                                       stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    plain = through["client"].chat.completions.create(model="planner", messages=HI, user="fay")
    assert plain.choices[0].message.content == text  # the same user, the same arm, the same imitation
    assert through["gateway"].exposures.flush()
    measured = [e for e in through["store"].exposures(1) if e.unit_id == "fay"]
    assert len(measured) == 2 and all(e.completion_tokens and e.http_status == 200 for e in measured)
    assert any(e.ttft_ms is not None for e in measured)


def test_the_emulator_and_the_gateway_list_models_as_openai_does(through) -> None:
    listed = {m.id for m in through["client"].models.list()}
    assert {"planner", "planner@champion", "planner@challenger"} <= listed
    through["emulator"].chat.completions.create(model=BASE, messages=HI)
    assert through["emulator"].models.retrieve(BASE).id == BASE
    with pytest.raises(openai.NotFoundError):
        through["emulator"].models.retrieve("ft:gpt-4o-mini-2024-07-18:acme::nothing")
