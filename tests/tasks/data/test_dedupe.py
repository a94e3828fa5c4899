"""Exact and near-duplicates with their clusters, and train/eval leakage (split and user eval set)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.data.config import DataConfig, DedupeConfig
from tasks.data.dedupe import SignatureStore, clusters, content_keys, lsh_shape, signatures, similar_pairs
from tasks.data.stage import check_file
from tests.conftest import write_jsonl
from tests.tasks.data.helpers import OPENAI, chat, distinct, line

ANSWER = ("- Book the venue three months ahead\n- Send invitations with a clear RSVP date\n"
          "- Plan the menu around dietary needs\n- Hire a photographer you have met\n"
          "- Keep a day-of checklist")


def test_exact_keys_ignore_case_and_surrounding_spaces_but_not_content() -> None:
    key = content_keys(chat("Plan a wedding", ANSWER))[0]
    assert content_keys(chat("  PLAN A WEDDING ", ANSWER.upper()))[0] == key
    assert content_keys(chat("Plan a funeral", ANSWER))[0] != key
    assert content_keys(chat("Plan a wedding", ANSWER, system="Be brief."))[0] != key


def test_signatures_estimate_similarity() -> None:
    base = "plan a wedding for two hundred guests in june with a small budget and a garden venue"
    near = base.replace("two hundred", "three hundred")
    far = "learn to play the violin in the evenings after work with a teacher once a week"
    rows = signatures([base, base, near, far])
    match = (rows[:, None, :] == rows[None, :, :]).mean(axis=2)
    assert match[0, 1] == 1.0
    assert 0.4 < match[0, 2] < 1.0
    assert match[0, 3] < 0.2


def test_lsh_shape_keeps_recall_at_the_threshold() -> None:
    for threshold in (0.5, 0.7, 0.8, 0.9, 1.0):
        bands, rows = lsh_shape(threshold)
        assert bands * rows <= 64
        assert 1 - (1 - threshold**rows) ** bands >= 0.97


def test_near_duplicate_pairs_become_clusters() -> None:
    texts = [json.loads(raw)["messages"][0]["content"] for raw in distinct(6)]
    texts[3] = texts[0] + " soon"
    texts[5] = texts[0]
    store = SignatureStore()
    store.extend(signatures(texts))
    rows = np.arange(len(texts))
    found = clusters(similar_pairs(store, rows, 0.7), rows)
    assert [g.tolist() for g in found] == [[0, 3, 5]]


def test_exact_and_near_duplicate_clusters_are_reported_with_line_numbers(tmp_path: Path) -> None:
    near = ANSWER.replace("three months", "four months")
    lines = [*distinct(20), line("Plan a wedding", ANSWER), line("  plan a WEDDING", ANSWER.lower()),
             line("Plan a wedding", near), line("Plan a wedding", ANSWER)]
    report = check_file(DataConfig(path=write_jsonl(tmp_path / "d.jsonl", lines)), OPENAI)
    assert report["duplicates"]["exact"] == {"clusters": 1, "examples": 3,
                                             "largest": [{"size": 3, "lines": [21, 22, 24]}]}
    assert report["duplicates"]["near"] == {"clusters": 1, "examples": 2,
                                            "largest": [{"size": 2, "lines": [21, 23]}]}
    assert report["counts"]["removed"] == {"exact_duplicates": 2, "near_duplicates": 1, "leaked": 0}
    assert report["counts"]["train"] + report["counts"]["eval"] == 21


def test_report_only_policies_keep_duplicates_and_remove_training_side_of_leaks(tmp_path: Path) -> None:
    lines = [*distinct(40), *[line("Plan a wedding", ANSWER)] * 2,
             *[line(f"Plan a wedding number {i}", ANSWER) for i in range(8)]]
    config = DataConfig(path=write_jsonl(tmp_path / "d.jsonl", lines), eval_fraction=0.3,
                        dedupe=DedupeConfig(exact="report", near="report", threshold=0.7))
    report = check_file(config, OPENAI)
    assert report["counts"]["removed"]["exact_duplicates"] == 0
    assert report["duplicates"]["near"]["clusters"] == 1
    leakage = report["leakage"]
    assert leakage["train_examples"] == report["counts"]["removed"]["leaked"] > 0
    assert all(p["in_eval_file"] is False for p in leakage["shown"])
    assert report["counts"]["train"] + report["counts"]["eval"] == 50 - leakage["train_examples"]


def test_a_user_eval_set_is_the_eval_split_and_its_near_duplicates_leave_train(tmp_path: Path) -> None:
    held_out = write_jsonl(tmp_path / "eval.jsonl",
                           [line("Plan a wedding", ANSWER), line("Learn chess", "- Play")])
    source = write_jsonl(tmp_path / "d.jsonl", [*distinct(30), line("plan a wedding!", ANSWER)])
    report = check_file(DataConfig(path=source, eval_path=held_out), OPENAI)
    assert report["counts"]["eval"] == 2
    assert report["counts"]["train"] == 30
    assert report["leakage"]["shown"] == [{"train_line": 31, "eval_line": 1, "in_eval_file": True}]
    assert report["leakage"]["pairs"] == 1
