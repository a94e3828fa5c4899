"""Deterministic train/eval split by content hash, and the atomic writing of the prepared files.

An example's side depends only on its normalised content and the salt: the same example lands on the
same side in every run, whatever the file order, and exact duplicates land together. With strata,
each stratum sends its own share (rounded) of lowest-hash examples to eval.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.dedupe import mix64
from tasks.rundir import naming

DROPPED, TRAIN, EVAL = 0, 1, 2


def canonical(example: dict[str, Any]) -> str:
    return json.dumps(example, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def split_positions(keys: np.ndarray, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per content key, fixed by the salt."""
    salted = np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little"))
    return (mix64(keys ^ salted) >> np.uint64(11)).astype(np.float64) / 2.0**53


def eval_mask(keys: np.ndarray, *, salt: str, fraction: float,
              strata: np.ndarray | None = None) -> np.ndarray:
    """True for the examples that go to eval."""
    position = split_positions(keys, salt)
    if strata is None:
        return position < fraction
    order = np.lexsort((position, strata))
    ordered = strata[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, ordered.size])
    rank = np.arange(ordered.size) - np.repeat(starts, sizes)
    quota = np.repeat(np.floor(sizes * fraction + 0.5).astype(np.int64), sizes)
    mask = np.empty(keys.size, dtype=bool)
    mask[order] = rank < quota
    return mask


def write_split(staged: list[Path], destination: np.ndarray, out_dir: Path,
                extra_eval: list[Path] | None = None,
                extra_rows: np.ndarray | None = None) -> dict[str, tuple[Path, str]]:
    """Route the staged lines (the part files in order, one line per row) to train.jsonl and eval.jsonl by
    `destination`, then append `extra_eval`'s lines (only `extra_rows` of them, when given) to eval. Both
    files appear by rename, together, or not at all. Returns each side's path and sha256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary = {}
    for side in ("train", "eval"):
        handle, name = tempfile.mkstemp(dir=out_dir, prefix=f".{side}.", suffix=".tmp")
        os.close(handle)
        temporary[side] = Path(name)
    try:
        digests = {TRAIN: hashlib.sha256(), EVAL: hashlib.sha256()}
        with temporary["train"].open("wb") as train, temporary["eval"].open("wb") as evaluation:
            targets = {TRAIN: train, EVAL: evaluation}
            for side, line in zip(destination.tolist(), _lines(staged), strict=True):
                if side != DROPPED:
                    targets[side].write(line)
                    digests[side].update(line)
            if extra_eval is not None:
                wanted = None if extra_rows is None else set(extra_rows.tolist())
                for row, line in enumerate(_lines(extra_eval)):
                    if wanted is None or row in wanted:
                        evaluation.write(line)
                        digests[EVAL].update(line)
            for handle in (train, evaluation):
                handle.flush()
                os.fsync(handle.fileno())
        written = {}
        for side, number in (("train", TRAIN), ("eval", EVAL)):
            written[side] = (out_dir / f"{side}.jsonl", digests[number].hexdigest())
            os.replace(temporary[side], written[side][0])
        return written
    except BaseException as exc:
        for path in temporary.values():
            path.unlink(missing_ok=True)
        if named := naming(exc, out_dir):
            raise named from exc
        raise


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as lines:
            yield from lines
