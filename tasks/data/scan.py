"""The one streaming pass over a chat JSONL file.

Each line is parsed and checked once (tasks.data.validate), PII is scrubbed, rejected or reported, the
target's rules are applied, tokens are counted, and the usable example is written to a staging file.
What later decisions need is kept per example in compact columns (about 40 bytes) plus its MinHash
signature (128 bytes). Tokens and signatures are computed a batch at a time (numpy works on the whole
batch; a worker thread was measured slower on two shared cores).
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tasks.data.checks import is_refusal
from tasks.data.config import PiiConfig
from tasks.data.dedupe import SignatureStore, content_keys, signatures
from tasks.data.pii import PiiScanner
from tasks.data.rules import Diagnostics
from tasks.data.target import DataTarget
from tasks.data.tokens import TokenCounter
from tasks.data.validate import ChatReader

BATCH = 512
PII_LINES_KEPT = 20


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
    """Findings per type, and the first line numbers per type; never the text."""

    counts: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)
    examples: int = 0

    def add(self, line: int, found: Counter[str]) -> None:
        self.examples += 1
        self.counts.update(found)
        for kind in found:
            kept = self.lines.setdefault(kind, [])
            if len(kept) < PII_LINES_KEPT:
                kept.append(line)


class FileScan:
    """Scans one file into `columns`, `store` (shared between files) and an optional staging file.

    Examples are parsed, checked and scrubbed one by one, then counted and signed a batch at a time.
    `too_long` lists the rows over the context limit; they are staged but never written to the split.
    """

    def __init__(self, path: Path, target: DataTarget, counter: TokenCounter, diagnostics: Diagnostics,
                 store: SignatureStore, *, pii: PiiConfig, stratify_by: str | None = None,
                 strata: dict[str, int] | None = None) -> None:
        self.path, self.target, self.counter = path, target, counter
        self.diagnostics, self.store = diagnostics, store
        self.format, self.context = target.format, target.context_tokens
        self.pii, self.scanner = pii, PiiScanner(pii.types)
        self.stratify_by, self.strata = stratify_by, strata if strata is not None else {}
        self.columns, self.tally, self.too_long = Columns(), PiiTally(), []
        self.reader = ChatReader(path, diagnostics)
        self._batch: list[dict[str, Any]] = []
        self._texts: list[str] = []

    def run(self, staging: BinaryIO | None) -> FileScan:
        for number, example, raw in self.reader.examples():
            admitted, changed = self._admit(number, example, raw)
            if admitted and staging is not None:
                if changed or raw is None:
                    raw = json.dumps(example, ensure_ascii=False, separators=(",", ":")).encode()
                staging.write(raw if raw.endswith(b"\n") else raw + b"\n")
            if len(self._texts) >= BATCH:
                self._flush()
        self._flush()
        return self

    def _flush(self) -> None:
        """Count the batch's tokens, sign it, and report what is over the context limit."""
        if not self._texts:
            return
        start = len(self.columns.tokens)
        counts = self.counter.batch_tokens(self._batch)
        self.columns.tokens.frombytes(counts.astype(np.uint32).tobytes())
        self.store.extend(signatures(self._texts))
        self._batch, self._texts = [], []
        if self.context is not None:
            for offset in np.flatnonzero(counts > self.context).tolist():
                self._over_limit(start + offset, int(counts[offset]))

    def _over_limit(self, row: int, tokens: int) -> None:
        over = self.diagnostics.add(self.columns.line[row], "too_long",
                                    f"{tokens:,} tokens; {self.target.base_model} trains on at most "
                                    f"{self.context:,} tokens per example")
        if over is not None:
            self.too_long.append(row)

    def _admit(self, number: int, example: dict[str, Any], raw: bytes | None = None) -> tuple[bool, bool]:
        """Apply the PII policy and the target's rules; record the example's columns and queue it.

        Returns whether the example is admitted and whether it changed (scrubbed, metadata removed)."""
        admitted, scrubbed = self._pii_pass(number, example, raw)
        if not admitted:
            return False, False
        problems = self.format.check(example)
        if problems:
            self.diagnostics.add_format(number, problems)
        metadata = example.pop("metadata", None)
        messages = example["messages"]
        key, compared = content_keys(example)
        columns = self.columns
        columns.line.append(number)
        columns.key.append(key)
        columns.system.append(((hash(messages[0]["content"]) & 0xFFFFFFFF) or 1)
                              if messages[0]["role"] == "system" else 0)
        columns.refusal.append(is_refusal(messages[-1].get("content") or ""))
        columns.stratum.append(self._stratum(metadata or {}))
        self._batch.append(example)
        self._texts.append(compared)
        return True, scrubbed or metadata is not None

    def _stratum(self, metadata: dict[str, Any]) -> int:
        if self.stratify_by is None:
            return 0
        value = str(metadata.get(self.stratify_by, "(none)"))
        return self.strata.setdefault(value, len(self.strata))

    def _pii_pass(self, number: int, example: dict[str, Any], raw: bytes | None) -> tuple[bool, bool]:
        """Scrub, reject or report PII in every message and tool call.

        Returns whether the example is still admitted and whether it was scrubbed."""
        # the raw line holds every string of the example: one scan clears most examples
        if not self.scanner.may_contain(raw if raw is not None else json.dumps(example)):
            return True, False
        scrub = self.pii.policy == "scrub"
        found: Counter[str] = Counter()
        for message in example["messages"]:
            found.update(self._scan_field(message, "content", scrub))
            for call in message.get("tool_calls") or ():
                found.update(self._scan_field(call.get("function") or {}, "arguments", scrub))
        if not found:
            return True, False
        self.tally.add(number, found)
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(found.items()))
        if self.pii.policy == "reject":
            rejected = self.diagnostics.add(number, "pii_rejected",
                                            f"contains {kinds}; data.pii.policy is reject")
            return rejected is None, False
        if self.pii.policy == "report":
            self.diagnostics.add(number, "pii_found",
                                 f"contains {kinds}; kept as is (data.pii.policy is report)")
        return True, scrub

    def _scan_field(self, holder: dict[str, Any], key: str, scrub: bool) -> list[str]:
        text = holder.get(key)
        if not isinstance(text, str) or not text:
            return []
        if scrub:
            cleaned, matches = self.scanner.scrub(text)
            if matches:
                holder[key] = cleaned
        else:
            matches = self.scanner.find(text)
        return [m.type for m in matches]

