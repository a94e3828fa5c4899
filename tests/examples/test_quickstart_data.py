from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from providers.base import Completion
from tasks.evaluation.graders import build_grader
from tasks.evaluation.items import EvalItem

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
DATA = QUICKSTART / "data" / "bullets.jsonl"


@pytest.fixture(scope="module")
def examples() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def test_generator_reproduces_the_committed_file(tmp_path: Path) -> None:
    out = tmp_path / "bullets.jsonl"
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_dataset.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )

    assert out.read_bytes() == DATA.read_bytes()


def test_smaller_count_is_a_prefix_of_the_committed_file(tmp_path: Path) -> None:
    out = tmp_path / "small.jsonl"
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_dataset.py"), "--out", str(out), "--count", "10"],
        check=True,
        capture_output=True,
        timeout=60,
    )

    assert DATA.read_text(encoding="utf-8").splitlines()[:10] == out.read_text(encoding="utf-8").splitlines()


def test_examples_are_chat_records_with_distinct_requests(examples: list[dict]) -> None:
    assert len(examples) >= 600
    assert all([m["role"] for m in e["messages"]] == ["system", "user", "assistant"] for e in examples)
    users = [e["messages"][1]["content"] for e in examples]
    assert len(set(users)) == len(users)


def test_every_answer_is_five_verb_bullets(examples: list[dict]) -> None:
    grader = build_grader("five_verb_bullets")
    failures = {}
    for example in examples:
        item = EvalItem(key="example", messages=example["messages"][:2])
        result = grader.grade(item, Completion(text=example["messages"][2]["content"], model_id="reference"))
        if not result.passed:
            failures[example["messages"][1]["content"]] = result.details

    assert not failures
