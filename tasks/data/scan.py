"""The one streaming pass over (a range of) a chat JSONL file, in one process.

Each line is parsed and checked once (tasks.data.validate), PII is scrubbed, rejected or reported, the
target's rules are applied, tokens are counted, and the usable example is written to a staging file.
What later decisions need is kept per example in compact columns (24 bytes) plus its MinHash signature
(128 bytes). Tokens and signatures are computed a batch at a time.

The pass yields `Part`s of at most PART_ROWS examples, numbered from their own first line: the caller
(tasks.data.filescan) renumbers them, whether they were scanned here or in a worker process. A part's
diagnostics are logged, not judged: the caller replays them, in file order, into its `Diagnostics`.
"""

from __future__ import annotations

import pickle
import tempfile
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from providers.formats import Severity
from tasks.data.checks import is_refusal
from tasks.data.config import PiiConfig
from tasks.data.dedupe import NUM_BINS, content_keys, signatures
from tasks.data.pii import PiiScanner
from tasks.data.rules import Diagnostic, Diagnostics
from tasks.data.source import LongLine, read_lines
from tasks.data.target import DataTarget
from tasks.data.validate import BOM, check_example, parse_line

BATCH = 512
PART_ROWS = 1 << 14
PII_LINES_KEPT = 20
# near-duplicates are judged on a conversation's first MiB: a longer one would cost its size many times over
MINHASH_CHARS = 1 << 20
_LOG_IN_MEMORY = 4096


@dataclass(frozen=True)
class ScanSpec:
    """What a process needs to scan a file (picklable: it travels to the workers)."""

    path: Path
    target: DataTarget
    pii: PiiConfig
    severity: dict[str, str] = field(default_factory=dict)
    stratify_by: str | None = None
    compression: str | None = None


@dataclass
class Columns:
    """Per usable example, in file order: line number, tokens, content key, system-prompt key (0: none),
    refusal, stratum. 24 bytes an example."""

    line: array = field(default_factory=lambda: array("I"))
    tokens: array = field(default_factory=lambda: array("I"))
    key: array = field(default_factory=lambda: array("Q"))
    system: array = field(default_factory=lambda: array("I"))
    refusal: array = field(default_factory=lambda: array("B"))
    stratum: array = field(default_factory=lambda: array("H"))

    def numpy(self, name: str) -> np.ndarray:
        column = getattr(self, name)
        kind = np.dtype(column.typecode)
        return np.frombuffer(column, dtype=kind) if len(column) else np.empty(0, dtype=kind)

    def __len__(self) -> int:
        return len(self.line)


@dataclass
class PiiTally:
    """Findings per type and per rule, and the first line numbers per type; never the text."""

    counts: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)
    examples: int = 0

    def add(self, line: int, found: Counter[str], rules: Counter[str]) -> None:
        self.examples += 1
        self.counts.update(found)
        self.rules.update(rules)
        for kind in found:
            kept = self.lines.setdefault(kind, [])
            if len(kept) < PII_LINES_KEPT:
                kept.append(line)

    def merge(self, other: PiiTally, line_offset: int) -> None:
        self.examples += other.examples
        self.counts.update(other.counts)
        self.rules.update(other.rules)
        for kind, lines in other.lines.items():
            kept = self.lines.setdefault(kind, [])
            kept += [line + line_offset for line in lines[:PII_LINES_KEPT - len(kept)]]


class DiagnosticLog:
    """Diagnostics as found, for a later replay in file order; past a few thousand they go to a file."""

    def __init__(self, spill_dir: Path) -> None:
        self.spill_dir, self.records, self.spill = spill_dir, [], None

    def __call__(self, diagnostic: Diagnostic) -> None:
        self.records.append((diagnostic.line, diagnostic.code, str(diagnostic.severity), diagnostic.message))
        if len(self.records) >= _LOG_IN_MEMORY:
            if self.spill is None:
                handle, name = tempfile.mkstemp(dir=self.spill_dir, prefix=".diagnostics.", suffix=".pickle")
                self.spill = Path(name)
                with open(handle, "wb"):
                    pass
            with self.spill.open("ab") as out:
                pickle.dump(self.records, out, protocol=pickle.HIGHEST_PROTOCOL)
            self.records = []

    def replay(self, diagnostics: Diagnostics, line_offset: int) -> None:
        """Add every logged diagnostic to `diagnostics`, its line moved by `line_offset`; the spill file
        is removed."""
        for records in self._batches():
            for line, code, severity, message in records:
                diagnostics.add(None if line is None else line + line_offset, code, message,
                                Severity(severity))

    def _batches(self) -> Iterator[list[tuple[Any, ...]]]:
        if self.spill is not None:
            with self.spill.open("rb") as spilled:
                while True:
                    try:
                        yield pickle.load(spilled)
                    except EOFError:
                        break
            self.spill.unlink(missing_ok=True)
        yield self.records


@dataclass
class Part:
    """One stretch of the file, numbered from its own first line: how many lines it covers, its usable
    examples (columns, signatures, where staged), what was found, and the stratum names by index."""

    lines: int
    columns: Columns
    signatures: np.ndarray
    tally: PiiTally
    too_long: list[int]
    strata: list[str]
    log: DiagnosticLog
    staged: Path | None


class RangeScan:
    """Scans lines into Parts. The tokenizer and the PII scanner are built once per process."""

    def __init__(self, spec: ScanSpec, work_dir: Path) -> None:
        self.spec, self.work_dir = spec, work_dir
        self.target = spec.target
        self.format, self.context = spec.target.format, spec.target.context_tokens
        self.counter = spec.target.token_counter()
        self.scanner = PiiScanner(spec.pii.types, spec.pii.phone_regions)

    def parts(self, handle: BinaryIO, length: int | None, *, file_start: bool,
              staging: bool) -> Iterator[Part]:
        """Parts covering the next `length` bytes of `handle` (to its end when None)."""
        builder = _PartBuilder(self, staging, file_start)
        for raw in read_lines(handle, length, self.counter.encode_length):
            builder.take(raw)
            if len(builder.columns) >= PART_ROWS:
                yield builder.finish()
                builder = _PartBuilder(self, staging, False)
        if builder.lines or builder.log.records:
            yield builder.finish()


class _PartBuilder:
    """One Part in the making."""

    def __init__(self, scan: RangeScan, staging: bool, file_start: bool) -> None:
        self.scan, self.spec, self.file_start = scan, scan.spec, file_start
        self.log = DiagnosticLog(scan.work_dir)
        self.diagnostics = Diagnostics(scan.format, self.spec.severity, keep=0, sink=self.log)
        self.columns, self.tally, self.too_long = Columns(), PiiTally(), []
        self.strata: dict[str, int] = {}
        self.signatures: list[np.ndarray] = []
        self.lines = 0
        self._batch: list[dict[str, Any]] = []
        self._texts: list[str] = []
        self.staged = None
        if staging:
            handle, name = tempfile.mkstemp(dir=scan.work_dir, prefix=".part.", suffix=".staged")
            self.staged, self._staging = Path(name), open(handle, "wb")  # noqa: SIM115

    def take(self, raw: bytes | LongLine) -> None:
        self.lines += 1
        number = self.lines
        if isinstance(raw, LongLine):
            self._long_line(number, raw)
            return
        example = parse_line(number, raw, self.diagnostics, file_start=self.file_start and number == 1)
        if example is None:
            return
        checked = check_example(number, example, self.diagnostics)
        if not checked.usable:
            return
        rewrite = checked.changed or (self.file_start and number == 1 and raw.startswith(BOM))
        admitted, changed = self._admit(number, example, raw)
        if admitted and self.staged is not None:
            if changed or rewrite:
                raw = orjson.dumps(example) + b"\n"
            self._staging.write(raw if raw.endswith(b"\n") else raw + b"\n")
        if len(self._texts) >= BATCH:
            self._flush()

    def finish(self) -> Part:
        self._flush()
        if self.staged is not None:
            self._staging.close()
        block = (np.concatenate(self.signatures) if self.signatures
                 else np.empty((0, NUM_BINS), dtype=np.uint16))
        return Part(self.lines, self.columns, block, self.tally, self.too_long, list(self.strata), self.log,
                    self.staged)

    def _long_line(self, number: int, line: LongLine) -> None:
        limit = (f"{self.scan.target.base_model} trains on at most {self.scan.context:,} tokens per example"
                 if self.scan.context else "far more than any provider's context")
        self.diagnostics.add(number, "too_long", f"a line of {line.size / 1e6:,.1f} MB, about "
                                                 f"{line.tokens:,} tokens (counted over the raw line, not "
                                                 f"kept); {limit}")

    def _flush(self) -> None:
        """Count the batch's tokens, sign it, and report what is over the context limit."""
        if not self._texts:
            return
        start = len(self.columns.tokens)
        counts = self.scan.counter.batch_tokens(self._batch)
        self.columns.tokens.frombytes(counts.astype(np.uint32).tobytes())
        self.signatures.append(signatures(self._texts))
        self._batch, self._texts = [], []
        context = self.scan.context
        if context is not None:
            for offset in np.flatnonzero(counts > context).tolist():
                self._over_limit(start + offset, int(counts[offset]))

    def _over_limit(self, row: int, tokens: int) -> None:
        over = self.diagnostics.add(self.columns.line[row], "too_long",
                                    f"{tokens:,} tokens; {self.scan.target.base_model} trains on at most "
                                    f"{self.scan.context:,} tokens per example")
        if over is not None:
            self.too_long.append(row)

    def _admit(self, number: int, example: dict[str, Any], raw: bytes) -> tuple[bool, bool]:
        """Apply the PII policy and the target's rules; record the example's columns and queue it.

        Returns whether the example is admitted and whether it changed (scrubbed, metadata removed)."""
        admitted, scrubbed = self._pii_pass(number, example, raw)
        if not admitted:
            return False, False
        problems = self.scan.format.check(example)
        if problems:
            self.diagnostics.add_format(number, problems)
        metadata = example.pop("metadata", None)
        messages = example["messages"]
        key, compared = content_keys(example)
        columns = self.columns
        columns.line.append(number)
        columns.key.append(key)
        first = messages[0]
        # a stable hash: the workers are separate processes, and str hashes differ between processes
        columns.system.append((zlib.crc32(first["content"].encode("utf-8", "replace")) or 1)
                              if first["role"] == "system" else 0)
        columns.refusal.append(is_refusal(messages[-1].get("content") or ""))
        columns.stratum.append(self._stratum(metadata or {}))
        self._batch.append(example)
        self._texts.append(compared[:MINHASH_CHARS])
        return True, scrubbed or metadata is not None

    def _stratum(self, metadata: dict[str, Any]) -> int:
        if self.spec.stratify_by is None:
            return 0
        value = str(metadata.get(self.spec.stratify_by, "(none)"))
        return self.strata.setdefault(value, len(self.strata))

    def _pii_pass(self, number: int, example: dict[str, Any], raw: bytes) -> tuple[bool, bool]:
        """Scrub, reject or report PII in every message and tool call.

        Returns whether the example is still admitted and whether it was scrubbed."""
        scanner, policy = self.scan.scanner, self.spec.pii.policy
        # the raw line holds every string of the example: one scan clears most examples
        if not scanner.may_contain(raw):
            return True, False
        scrub = policy == "scrub"
        found: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for message in example["messages"]:
            self._scan_field(message, "content", scrub, found, rules)
            for call in message.get("tool_calls") or ():
                self._scan_field(call.get("function") or {}, "arguments", scrub, found, rules)
        if not found:
            return True, False
        self.tally.add(number, found, rules)
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(found.items()))
        why = f"{kinds} (rules: {', '.join(sorted(rules))})"
        if policy == "reject":
            rejected = self.diagnostics.add(number, "pii_rejected",
                                            f"contains {why}; data.pii.policy is reject")
            return rejected is None, False
        if policy == "report":
            self.diagnostics.add(number, "pii_found",
                                 f"contains {why}; kept as is (data.pii.policy is report)")
        return True, scrub

    def _scan_field(self, holder: dict[str, Any], key: str, scrub: bool, found: Counter[str],
                    rules: Counter[str]) -> None:
        text = holder.get(key)
        if not isinstance(text, str) or not text:
            return
        if scrub:
            cleaned, matches = self.scan.scanner.scrub(text)
            if matches:
                holder[key] = cleaned
        else:
            matches = self.scan.scanner.find(text)
        for match in matches:
            found[match.type] += 1
            rules[match.rule] += 1
