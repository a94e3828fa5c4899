"""One input file scanned on every core, merged back in file order.

The file is cut into byte ranges on line boundaries (tasks.data.source); each range is scanned in a worker
process (tasks.data.scan.RangeScan) and its parts come back in file order, whatever order they finish
in. Each part numbers its lines from one, and the merge moves them by the lines before it, so every line
number, diagnostic and PII tally is the one a single process would give. The merge replays the parts'
diagnostics into the caller's `Diagnostics`: the same severities, overrides, kept examples and sink.

Small files, one core, and compressed files (which cannot be cut into ranges) are scanned here, in
this process, a part at a time. Workers are forked when this process runs one thread (they inherit
the loaded tokenizer); otherwise, as inside a Prefect task, they come from a fork server, since forking a
process with other threads running can leave the child holding a lock nobody will release.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.data.dedupe import SignatureStore
from tasks.data.rules import Diagnostics
from tasks.data.scan import Columns, Part, PiiTally, RangeScan, ScanSpec
from tasks.data.source import FileDigest, line_ranges, open_input

MIN_CHUNK, MAX_CHUNK = 1 << 20, 8 << 20
PARALLEL_FROM = 8 << 20
_SCANS: dict[str, RangeScan] = {}


@dataclass(frozen=True)
class ScanPlan:
    """How to spread a scan: `workers` processes (None: every core this process may use) over ranges of
    about `chunk_bytes` (None: sized from the file, and no ranges at all below PARALLEL_FROM bytes)."""

    workers: int | None = None
    chunk_bytes: int | None = None

    def worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def ranges(self, path: Path) -> list[tuple[int, int]]:
        """The ranges to scan in parallel; one range means scanning in this process."""
        size, workers = path.stat().st_size, self.worker_count()
        if workers <= 1 or (self.chunk_bytes is None and size < PARALLEL_FROM):
            return [(0, size)]
        # sixteen ranges a worker: the last ones to finish leave little idle time behind them
        chunk = self.chunk_bytes or min(MAX_CHUNK, max(MIN_CHUNK, size // (workers * 16)))
        return line_ranges(path, chunk)


class FileScan:
    """Scans one file into `columns`, `store` (shared between files) and, when staging, part files.

    `too_long` lists the rows over the context limit (staged, never written to the split); `staged`
    lists the part files in file order, one line per row; `sha256` is the digest of the file's bytes.
    """

    def __init__(self, spec: ScanSpec, diagnostics: Diagnostics, store: SignatureStore, *,
                 strata: dict[str, int] | None = None, plan: ScanPlan | None = None) -> None:
        self.spec, self.diagnostics, self.store = spec, diagnostics, store
        self.strata = strata if strata is not None else {}
        self.plan = plan or ScanPlan()
        self.columns, self.tally, self.too_long, self.staged = Columns(), PiiTally(), [], []
        self.lines, self.workers, self.sha256 = 0, 1, ""

    def run(self, staging_dir: Path | None = None) -> FileScan:
        """Scan the file; part files go to `staging_dir` when given (the caller removes them)."""
        path = self.spec.path
        with tempfile.TemporaryDirectory(prefix="loraflow-scan-") as scratch:
            work = staging_dir if staging_dir is not None else Path(scratch)
            digest = None
            for part in self._parts(work, staging_dir is not None):
                digest = digest or FileDigest(path)  # started after the workers were forked
                self._merge(part)
            digest = digest or FileDigest(path)
        if self.lines == 0:
            self.diagnostics.add(1, "empty_file", "the file has no lines")
        self.sha256 = digest.hexdigest()
        return self

    def _parts(self, work: Path, staging: bool) -> Iterator[Part]:
        spec = self.spec
        ranges = [(0, None)] if spec.compression else self.plan.ranges(spec.path)
        self.workers = min(self.plan.worker_count(), len(ranges))
        if self.workers <= 1:
            with open_input(spec.path, spec.compression) as handle:
                yield from RangeScan(spec, work).parts(handle, None, file_start=True, staging=staging)
            return
        yield from _fan_out(spec, work, ranges, self.workers, staging)

    def _merge(self, part: Part) -> None:
        """Append a part: its lines and rows move past everything merged before it."""
        offset, rows = self.lines, len(self.columns)
        part.log.replay(self.diagnostics, offset)
        columns, merged = part.columns, self.columns
        merged.line.frombytes((columns.numpy("line") + np.uint32(offset)).astype(np.uint32).tobytes())
        for name in ("tokens", "key", "system", "refusal"):
            getattr(merged, name).extend(getattr(columns, name))
        if part.strata:
            lookup = np.array([self.strata.setdefault(name, len(self.strata)) for name in part.strata],
                              dtype=np.uint16)
            merged.stratum.frombytes(lookup[columns.numpy("stratum")].tobytes())
        else:
            merged.stratum.extend(columns.stratum)
        self.store.extend(part.signatures)
        self.tally.merge(part.tally, offset)
        self.too_long += [rows + row for row in part.too_long]
        if part.staged is not None:
            self.staged.append(part.staged)
        self.lines += part.lines


def _fan_out(spec: ScanSpec, work: Path, ranges: list[tuple[int, int]], workers: int,
             staging: bool) -> Iterator[Part]:
    """The parts of every range, scanned by `workers` processes, in file order. At most two ranges per
    worker are in flight, so finished parts never pile up."""
    token = uuid.uuid4().hex
    context = _context()
    if context.get_start_method() == "fork":
        _scanner(token, spec, work).counter.encode_length("")  # the children inherit the loaded tokenizer
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_scanner,
                               initargs=(token, spec, work))
    queue: deque[Future[list[Part]]] = deque()
    waiting = iter(ranges)
    try:
        for start, end in waiting:
            queue.append(pool.submit(_scan_range, token, spec, work, start, end, staging))
            if len(queue) >= 2 * workers:
                break
        while queue:
            parts = queue.popleft().result()
            for start, end in waiting:
                queue.append(pool.submit(_scan_range, token, spec, work, start, end, staging))
                break
            yield from parts
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _SCANS.pop(token, None)


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tasks.data.scan"])
        return context
    return multiprocessing.get_context("spawn")


def _scanner(token: str, spec: ScanSpec, work: Path) -> RangeScan:
    """This process's scanner for one file scan (built once: the tokenizer loads on first use)."""
    scan = _SCANS.get(token)
    if scan is None:
        scan = _SCANS[token] = RangeScan(spec, work)
        scan.counter.encode_length("")
    return scan


def _scan_range(token: str, spec: ScanSpec, work: Path, start: int, end: int, staging: bool) -> list[Part]:
    """In a worker: the parts of bytes [start, end) of the file."""
    with spec.path.open("rb") as handle:
        handle.seek(start)
        return list(_scanner(token, spec, work).parts(handle, end - start, file_start=start == 0,
                                                      staging=staging))
