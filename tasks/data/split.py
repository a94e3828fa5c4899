"""Deterministic train/eval split by content hash, written in one streaming pass.

An example goes to eval when sha256(salt + canonical JSON) falls below `eval_fraction`; the same
example lands on the same side in every run, whatever the file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def canonical(example: dict[str, Any]) -> str:
    return json.dumps(example, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def goes_to_eval(example: dict[str, Any], *, salt: str, eval_fraction: float) -> bool:
    digest = hashlib.sha256((salt + canonical(example)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


class SplitWriter:
    """Streams examples into temporary train/eval files; `commit` renames them, `discard` removes them."""

    def __init__(self, out_dir: Path, *, salt: str, eval_fraction: float) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.salt, self.eval_fraction = out_dir, salt, eval_fraction
        self.counts = {"train": 0, "eval": 0}
        self._files = {}
        for side in ("train", "eval"):
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{side}.", suffix=".tmp")
            self._files[side] = (Path(tmp), os.fdopen(fd, "w", encoding="utf-8", newline="\n"))

    def add(self, example: dict[str, Any]) -> None:
        side = "eval" if goes_to_eval(example, salt=self.salt, eval_fraction=self.eval_fraction) else "train"
        self._files[side][1].write(json.dumps(example, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.counts[side] += 1

    def commit(self) -> dict[str, Path]:
        paths = {}
        for side, (tmp, handle) in self._files.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            paths[side] = self.out_dir / f"{side}.jsonl"
            os.replace(tmp, paths[side])
        return paths

    def discard(self) -> None:
        for tmp, handle in self._files.values():
            handle.close()
            tmp.unlink(missing_ok=True)
