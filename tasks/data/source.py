"""Reading a chat JSONL input: compression by its magic bytes, byte ranges on line boundaries, and lines
read with bounded memory.

A line is read with `readline(LONG_LINE)`, so no line costs more than LONG_LINE bytes at once. A longer
line (far above any provider's context: OpenAI's largest is 128K tokens, about 0.5 MB) is never parsed:
it is read a block at a time and measured (bytes and tokens over its raw text), and `LongLine` says so.

Compressed files (gzip, bzip2, xz, and zstd when `zstandard` is installed) are read transparently, on one
core: a compressed stream cannot be cut into ranges.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import io
import itertools
import lzma
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from providers.errors import ConfigError

LONG_LINE = 8 << 20
BLOCK = 1 << 20
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))


@dataclass(frozen=True)
class LongLine:
    """A line over LONG_LINE bytes, measured and not kept: its size, its tokens counted over the raw
    text (JSON syntax included), and whether it ended with a newline."""

    size: int
    tokens: int
    complete: bool


def compression(path: Path) -> str | None:
    """"gzip", "bzip2", "xz" or "zstd" when the file starts with that format's magic bytes, else None."""
    with path.open("rb") as handle:
        head = handle.read(6)
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def open_input(path: Path, kind: str | None) -> BinaryIO:
    """The file's bytes, decompressed when `kind` names a compression."""
    if kind is None:
        return path.open("rb")
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise ConfigError(f"{path}: {path.name} is zstd-compressed; decompress it first (zstd -d) or "
                          "install the `zstandard` package to read it as it is") from None
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True))


def line_ranges(path: Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of about `chunk_bytes` that cover the file and begin at line starts."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as handle:
        nominal = chunk_bytes
        while nominal < size:
            start = _next_line_start(handle, max(nominal, bounds[-1] + 1) - 1, size)
            if start >= size:
                break
            bounds.append(start)
            nominal = start + chunk_bytes
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _next_line_start(handle: BinaryIO, position: int, size: int) -> int:
    """The offset just after the first newline at or after `position` (`size` when there is none)."""
    handle.seek(position)
    while position < size:
        block = handle.read(BLOCK)
        if not block:
            break
        found = block.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(block)
    return size


def read_lines(handle: BinaryIO, length: int | None, measure: Callable[[str], int],
               limit: int = LONG_LINE) -> Iterator[bytes | LongLine]:
    """The lines of the next `length` bytes of `handle` (to the end when None), each with its newline;
    a line over `limit` bytes comes as a LongLine, measured with `measure` (text -> tokens)."""
    left = length if length is not None else -1
    while left != 0:
        raw = handle.readline(limit)
        if not raw:
            return
        if len(raw) == limit and not raw.endswith(b"\n"):
            line = _measure_long(handle, raw, measure)
            left -= line.size if left > 0 else 0
            yield line
            continue
        left -= len(raw) if left > 0 else 0
        yield raw


def _measure_long(handle: BinaryIO, head: bytes, measure: Callable[[str], int]) -> LongLine:
    """Read the rest of a long line a block at a time; count its tokens piece by piece, cutting at a space
    so that the pieces tokenize as the whole would (the tokenizer splits words at their leading space)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    size, tokens, carry, block, complete = 0, 0, "", head, False
    while block:
        size += len(block)
        complete = block.endswith(b"\n")
        text = carry + decoder.decode(block, final=complete)
        cut = text.rfind(" ", 0, len(text) - 1)
        cut = cut if cut > 0 and not complete else len(text)
        tokens += measure(text[:cut])
        carry = text[cut:]
        block = b"" if complete else handle.readline(BLOCK)
    return LongLine(size, tokens + (measure(carry) if carry else 0), complete)


class FileDigest:
    """The sha256 of a file's bytes, computed on a thread while the scan runs (hashlib releases the GIL)."""

    def __init__(self, path: Path) -> None:
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, args=(path,), name="loraflow-sha256", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        with path.open("rb") as handle:
            while block := handle.read(BLOCK):
                self._digest.update(block)

    def hexdigest(self) -> str:
        self._thread.join()
        return self._digest.hexdigest()
