"""The run directory and its lineage manifest.

    runs/<pipeline>/<run_id>/  data/train.jsonl data/eval.jsonl report.json report.md
                               eval/outputs.jsonl decision.json manifest.json

Every file is written to a temporary name and renamed, so a crash never leaves half a file; in an object
store (tasks.runstore) each file is one PUT, which is just as whole. `manifest.json` collects the hashes and
ids that tie the run together; sections are replaced whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from tasks.runstore import RunPath, absolute, download, is_remote, upload


def atomic_write(path: RunPath, content: str | bytes) -> None:
    """Write `content` to `path` through a temporary file in the same directory and a rename; in an object
    store, by one PUT."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if is_remote(path):
        path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
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


def naming(exc: BaseException, path: RunPath) -> OSError | None:
    """An OSError like `exc` that names `path`, when `exc` is one that names no file (a full disk fails a
    write, not an open, and then says only "No space left on device"); None otherwise."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, str(path))
    return None


def write_json(path: RunPath, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: RunPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _claim(parent: RunPath, name: str) -> RunPath:
    """A new folder `name` under `parent` (with a suffix when it is taken). Locally one mkdir claims it, so
    runs started in the same second get a folder each; an object store has no such claim, and two runs of
    one config started there in the same second and on different machines could share one."""
    if is_remote(parent):
        root, suffix = parent / name, 1
        while root.exists():
            suffix += 1
            root = parent / f"{name}-{suffix}"
        return root
    parent.mkdir(parents=True, exist_ok=True)
    root, suffix = parent / name, 1
    while True:
        try:
            root.mkdir()
            return root
        except FileExistsError:
            suffix += 1
            root = parent / f"{name}-{suffix}"


class RunDir:
    """One pipeline run's directory; `record` updates a section of its manifest atomically.

    `root` is where the run's files live: a local folder or a prefix in an object store (tasks.runstore).
    `work` is a local folder for the files that must be real ones (the prepared data a provider SDK uploads,
    the data scan's staged parts): the run directory itself when that is local, else a temporary folder whose
    files are `publish`ed to `root` and which `close` (or the end of the process) removes.
    """

    def __init__(self, root: RunPath, work: Path | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.eval_dir = root / "eval"
        self.manifest_path = root / "manifest.json"
        if work is None and is_remote(root):
            work = Path(tempfile.mkdtemp(prefix="loraflow-run-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, work, ignore_errors=True)
        self.work = root if work is None else work

    @classmethod
    def create(cls, run_root: RunPath, pipeline: str, config_sha256: str) -> RunDir:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        root = _claim(run_root / pipeline, f"{stamp}-{config_sha256[:8]}")
        run = cls(absolute(root))
        run.work_data.mkdir(parents=True, exist_ok=True)
        run.record("run", {"pipeline": pipeline, "config_sha256": config_sha256,
                           "started_at": datetime.now(UTC).isoformat()})
        return run

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    @property
    def work_data(self) -> Path:
        """Where the prepared data is made: `data_dir` itself for a local run."""
        return self.work / "data"

    def sub(self, name: str) -> RunDir:
        """The run directory of a part of this run (a comparison, the baseline data) in the folder `name`."""
        return RunDir(self.root / name, self.work / name)

    def publish(self, local: Path) -> RunPath:
        """Copy a file made under `work` to its place under `root` (nothing to do for a local run)."""
        target = self.root.joinpath(*local.relative_to(self.work).parts)
        if self.remote:
            upload(local, target)
        return target

    def fetch(self, path: RunPath) -> Path:
        """A real local file with the bytes of `path` (a file of this or another run): `path` itself when
        it is local, else a copy under `work` that goes with it."""
        if not is_remote(path):
            return path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        return download(path, self.work / ".fetched" / digest / path.name)

    def close(self) -> None:
        """Remove the local copies of a run kept in an object store (the run's files stay there)."""
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def record(self, section: str, value: Any) -> None:
        manifest = self.manifest()
        manifest[section] = value
        write_json(self.manifest_path, manifest)
