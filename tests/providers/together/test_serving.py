"""Together's dedicated endpoints on the emulator: made once per submission, reused by a re-run, started again
when stopped, answering like the fine-tune, and deleted by unserve."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

together = pytest.importorskip("together", reason="the together extra is not installed")

from emulator import EmulatorServer, Timeline
from providers.base import Decoding, JobState, PreparedDataset, TrainingSpec
from providers.errors import PermanentProviderError
from providers.together.adapter import TogetherOptions, TogetherProvider
from tests.conftest import QUICKSTART

LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    fast = Timeline(validating_s=0.02, queued_s=0.02, steps=3, step_s=0.02, finishing_s=0.02)
    with EmulatorServer(api_key="k", timeline=fast) as running:
        yield running


def trained(server: EmulatorServer, tmp_path: Path) -> tuple[TogetherProvider, object, str]:
    client = together.Together(base_url=server.base_url_for("together"), api_key="k", max_retries=0)
    provider = TogetherProvider(client, TogetherOptions(file_poll_interval_s=0.02, serve_poll_s=0.02))
    lines = (QUICKSTART / "data" / "bullets.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "t.jsonl").write_text("".join(lines[:30]), encoding="utf-8")
    prepared = PreparedDataset(train_path=tmp_path / "t.jsonl", sha256="e" * 64, train_examples=30)
    data = provider.upload(prepared)
    job = provider.create_job(TrainingSpec(base_model=LLAMA, epochs=1, suffix="serve"), data,
                              idempotency_key=f"serve-{tmp_path.name}")
    for _ in range(300):
        status = provider.get_job(job)
        if status.state.is_terminal:
            break
        time.sleep(0.02)
    assert status.state is JobState.SUCCEEDED
    return provider, status.model, lines[0]


def endpoints(server: EmulatorServer) -> list[dict]:
    return server.state.store("together_endpoints", lambda state: None).listed()


def test_an_endpoint_per_submission_reused_and_deleted(server: EmulatorServer, tmp_path: Path) -> None:
    provider, model, first = trained(server, tmp_path)
    assert any("dedicated endpoint" in w for w in provider.check_spec(TrainingSpec(base_model=LLAMA)))
    served = provider.serve(model, name="loraflow-abc123")
    assert served.model_id != model.model_id and served.job_id == model.job_id
    again = provider.serve(model, name="loraflow-abc123")  # a re-run finds it: no second endpoint
    assert again == served and [e["display_name"] for e in endpoints(server)].count("loraflow-abc123") == 1
    *prompt, answer = json.loads(first)["messages"]
    assert provider.infer(served, prompt, Decoding(max_tokens=256)).text == answer["content"]

    record = next(e for e in endpoints(server) if e["display_name"] == "loraflow-abc123")
    provider.client.patch(f"/v1/endpoints/{record['id']}", cast_to=object, body={"state": "STOPPED"})
    assert provider.serve(model, name="loraflow-abc123") == served  # started again, not made again

    provider.unserve(served)
    provider.unserve(served)  # gone already: nothing to do
    assert not [e for e in endpoints(server) if e["display_name"] == "loraflow-abc123"]


def test_an_endpoint_name_holding_another_model_is_left_alone(server: EmulatorServer, tmp_path: Path) -> None:
    provider, model, _ = trained(server, tmp_path)
    provider.client.post("/v1/endpoints", cast_to=object, body={
        "display_name": "loraflow-taken", "model": LLAMA, "hardware": "1x_nvidia_h100_80gb_sxm"})
    with pytest.raises(PermanentProviderError, match="serves 'meta-llama"):
        provider.serve(model, name="loraflow-taken")
