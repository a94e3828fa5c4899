"""Serving around evaluation: made under the submission key, recorded, deleted unless the candidate is
accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.base import ModelRef, ServesModels
from providers.fake import FakeProvider
from tasks.evaluation.decision import Decision
from tasks.rundir import RunDir
from tasks.training.serving import release_serving, serve_model, serving_name

TUNED = ModelRef(provider="fake", model_id="custom-model/1", base_model="base")


class ServedFake(FakeProvider):
    """The fake, plus a serving step that bills until deleted (the way Bedrock's provisioned throughput
    does)."""

    def __init__(self) -> None:
        super().__init__()
        self.servings: dict[str, str] = {}

    def serve(self, model: ModelRef, *, name: str) -> ModelRef:
        self.servings.setdefault(name, f"serving/{name}")
        return model.model_copy(update={"model_id": self.servings[name]})

    def unserve(self, served: ModelRef) -> None:
        self.servings = {k: v for k, v in self.servings.items() if v != served.model_id}


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path, "serving", "0" * 64)


def manifest(run: RunDir) -> dict:
    return json.loads(run.manifest_path.read_text(encoding="utf-8"))


def test_a_provider_that_serves_by_id_is_left_alone(run: RunDir) -> None:
    provider = FakeProvider()
    assert not isinstance(provider, ServesModels)
    assert serve_model.fn(provider, TUNED, run, "k" * 64) == TUNED
    release_serving.fn(provider, TUNED, TUNED, Decision.model_construct(outcome="reject_worse"), run)
    assert "serving" not in manifest(run)


@pytest.mark.parametrize(("outcome", "kept"), [("accept", True), ("accept_weak", True),
                                               ("reject_worse", False), ("underpowered", False)])
def test_serving_is_deleted_unless_the_candidate_is_accepted(run: RunDir, outcome: str, kept: bool) -> None:
    provider = ServedFake()
    served = serve_model.fn(provider, TUNED, run, "k" * 64)
    assert served.model_id == f"serving/{serving_name('k' * 64)}"
    assert serve_model.fn(provider, TUNED, run, "k" * 64) == served  # a re-run finds the same serving
    assert manifest(run)["serving"]["state"] == "serving"
    release_serving.fn(provider, TUNED, served, Decision.model_construct(outcome=outcome), run)
    assert bool(provider.servings) is kept
    assert manifest(run)["serving"] == {"model_id": TUNED.model_id, "served_as": served.model_id,
                                        "state": "kept" if kept else "released"}
