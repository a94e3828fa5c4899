"""The deterministic split by content hash, stratification, and the atomic writing of the split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tasks.data.split import DROPPED, EVAL, TRAIN, eval_mask, write_split


def test_split_is_deterministic_order_free_and_salted() -> None:
    keys = np.arange(1, 4001, dtype=np.uint64) * np.uint64(2654435761)
    sides = eval_mask(keys, salt="s", fraction=0.25)
    assert np.array_equal(sides[::-1], eval_mask(keys[::-1], salt="s", fraction=0.25))
    assert 0.22 < sides.mean() < 0.28
    assert not np.array_equal(sides, eval_mask(keys, salt="other", fraction=0.25))


def test_stratified_split_gives_every_stratum_its_share() -> None:
    keys = np.arange(1, 1001, dtype=np.uint64) * np.uint64(40503)
    strata = np.repeat([0, 1, 2], [900, 90, 10])
    sides = eval_mask(keys, salt="s", fraction=0.1, strata=strata)
    assert [int(sides[strata == s].sum()) for s in (0, 1, 2)] == [90, 9, 1]


def test_write_split_routes_rows_and_appends_the_eval_file(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.write_bytes(b"a\nb\nc\nd\n")
    extra = tmp_path / "extra"
    extra.write_bytes(b"e\n")
    written = write_split([staged], np.array([TRAIN, EVAL, DROPPED, TRAIN]), tmp_path / "out", [extra])
    assert written["train"][0].read_bytes() == b"a\nd\n"
    assert written["eval"][0].read_bytes() == b"b\ne\n"
    assert written["eval"][1] == hashlib.sha256(b"b\ne\n").hexdigest()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.jsonl", "train.jsonl"]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.write_bytes(b"a\nb\n")
    with pytest.raises(ValueError):
        write_split([staged], np.array([TRAIN]), tmp_path / "out")  # one row short of the staged lines
    assert list((tmp_path / "out").iterdir()) == []
