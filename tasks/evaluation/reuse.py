"""Answers paid for by earlier runs of a pipeline, read back from their run directories.

The registry caches every answer; when it is lost or emptied (a new machine, a fresh database) the run
directories still hold them (local or in an object store, tasks.runstore): each evaluation writes
eval/outputs.jsonl with every answer's store key, and the manifest's `evaluation` section names the models
and the file's sha256. A key hashes the target, the model, the messages, the decoding and the sample, so a
different model, prompt, eval item or sampling setting never finds an earlier answer. Only answers without
an infra error are reused, from files whose hash still matches their manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from providers.base import Completion
from tasks.rundir import RunDir, sha256_file
from tasks.runstore import RunPath


class EarlierRuns:
    """The run directories beside `run` (its pipeline's), newest first, as an AnswerSource for ModelCaller."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def answers(self, wanted: Mapping[str, str]) -> dict[str, Completion]:
        """The answers among `wanted` (key -> model id) in earlier runs that evaluated one of those models."""
        models, found = set(wanted.values()), {}
        for outputs in self._outputs(models):
            found.update(_answers(outputs, {key for key in wanted if key not in found}))
            if len(found) == len(wanted):
                break
        return found

    def _outputs(self, models: set[str]) -> Iterator[RunPath]:
        here = self.run.root
        if not here.parent.is_dir():
            return
        for earlier in sorted((p for p in here.parent.iterdir() if p != here and p.is_dir()), reverse=True):
            evaluation = _evaluation(earlier)
            if evaluation is None or not models & _model_ids(evaluation):
                continue
            outputs = earlier / str(evaluation.get("outputs", ""))
            try:
                if outputs.is_file() and sha256_file(outputs) == evaluation.get("outputs_sha256"):
                    yield outputs
            except OSError:
                continue


def _evaluation(root: RunPath) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not a run directory, or one that cannot vouch for its outputs
    evaluation = manifest.get("evaluation") if isinstance(manifest, dict) else None
    return evaluation if isinstance(evaluation, dict) else None


def _model_ids(evaluation: dict[str, Any]) -> set[str]:
    models = evaluation.get("models")
    if not isinstance(models, dict):
        return set()
    return {str(ref.get("model_id")) for ref in models.values() if isinstance(ref, dict)}


def _answers(outputs: RunPath, keys: set[str]) -> dict[str, Completion]:
    found = {}
    with outputs.open(encoding="utf-8") as lines:
        for line in lines:
            result = json.loads(line)
            if result.get("key") in keys and result.get("error") is None and result.get("output") is not None:
                found[result["key"]] = Completion(
                    text=result["output"], model_id=result["model_id"], finish_reason=result["finish_reason"],
                    prompt_tokens=result["prompt_tokens"], completion_tokens=result["completion_tokens"],
                    latency_ms=result["latency_ms"])
    return found
