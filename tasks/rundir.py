"""The run directory and its lineage manifest.

    runs/<pipeline>/<run_id>/  data/train.jsonl data/eval.jsonl report.json report.md
                               eval/outputs.jsonl decision.json manifest.json

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
`manifest.json` collects the hashes and ids that tie the run together; sections are replaced whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if named := naming(exc, path):
            raise named from exc
        raise


def naming(exc: BaseException, path: Path) -> OSError | None:
    """An OSError like `exc` that names `path`, when `exc` is one that names no file (a full disk fails a
    write, not an open, and then says only "No space left on device"); None otherwise."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, str(path))
    return None


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    """One pipeline run's directory; `record` updates a section of its manifest atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.eval_dir = root / "eval"
        self.manifest_path = root / "manifest.json"

    @classmethod
    def create(cls, run_root: Path, pipeline: str, config_sha256: str) -> RunDir:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (run_root / pipeline).mkdir(parents=True, exist_ok=True)
        root, suffix = run_root / pipeline / f"{stamp}-{config_sha256[:8]}", 1
        while True:
            try:
                root.mkdir()  # the claim: runs started in the same second get a suffix each, never one folder
                break
            except FileExistsError:
                suffix += 1
                root = run_root / pipeline / f"{stamp}-{config_sha256[:8]}-{suffix}"
        run = cls(root.resolve())
        run.data_dir.mkdir()
        run.record("run", {"pipeline": pipeline, "config_sha256": config_sha256,
                           "started_at": datetime.now(UTC).isoformat()})
        return run

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def record(self, section: str, value: Any) -> None:
        manifest = self.manifest()
        manifest[section] = value
        write_json(self.manifest_path, manifest)
