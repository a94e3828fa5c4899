"""Exact and near-duplicate detection: content keys, MinHash signatures, LSH clusters.

Exact duplicates share a key over the whole conversation with case and surrounding spaces ignored.
Near-duplicates use one-permutation MinHash (64 bins, densified) over word-anchored 8-byte shingles
of the lower-cased conversation without its system prompt (a shared system prompt would make every example
look alike). Shingles, hashing and the per-bin minimum are numpy over a batch of examples, which is
why this is not `datasketch`: its per-example Python loop costs more than parsing and tokenising
together. A signature keeps 16 bits per bin (128 bytes an example); bands of the signature are the
LSH keys; candidate pairs are confirmed by the estimated Jaccard similarity; clusters are the
connected components of confirmed pairs (scipy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NUM_BINS = 64
SHINGLE_BYTES = 8
CHUNK_ROWS = 1 << 16
_EMPTY = np.uint32(0xFFFFFFFF)
_U64 = np.uint64
_PAD = bytes(SHINGLE_BYTES - 1)


def normalize(text: str) -> str:
    """The text as the exact-duplicate check sees it: lower case, without surrounding whitespace."""
    return text.strip().lower()


def content_keys(example: dict[str, Any]) -> tuple[int, str]:
    """The 64-bit exact-duplicate key of the whole conversation (case and surrounding spaces ignored;
    stable across runs and machines), and the text near-duplicate detection compares: every non-system
    message (a shared system prompt would make every example look alike)."""
    parts, compared = [], []
    for message in example["messages"]:
        role, text = message.get("role"), (message.get("content") or "").strip().lower()  # normalize()
        parts += (role, text)
        if message.get("tool_calls"):
            parts.append(repr([call.get("function") for call in message["tool_calls"]]))
        if role != "system":
            compared.append(text)
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little"), "\n".join(compared)


def mix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place on a uint64 array."""
    x ^= x >> _U64(33)
    x *= _U64(0xFF51AFD7ED558CCD)
    x ^= x >> _U64(33)
    x *= _U64(0xC4CEB9FE1A85EC53)
    x ^= x >> _U64(33)
    return x


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures, one row of NUM_BINS uint16 per (normalised) text."""
    hashes, owner = _shingle_hashes(texts)
    return _densify(_bin_minima(hashes, owner, len(texts)))


def _shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the 8-byte shingles that start at a word (after whitespace, however much, or at a
    multi-byte character, so scripts without spaces still shingle per character), and their text."""
    encoded = [b" " + t.encode("utf-8") + _PAD for t in texts]
    ends = np.cumsum(np.fromiter((len(e) for e in encoded), np.int64, len(encoded)))
    raw = b"".join(encoded)
    data = np.frombuffer(raw, dtype=np.uint8)
    space = data <= 0x20
    anchor = data >= 0xC0
    anchor[1:] |= space[:-1] & ~space[1:]
    positions = np.flatnonzero(anchor[: data.size - SHINGLE_BYTES + 1])
    owner = np.searchsorted(ends, positions, side="right")
    inside = positions + SHINGLE_BYTES <= ends[owner]
    positions, owner = positions[inside], owner[inside]
    # the 8 bytes at every anchor, read as one little-endian integer
    windows = np.ndarray(shape=(data.size - SHINGLE_BYTES + 1,), dtype="<u8", buffer=raw, strides=(1,))
    return mix64(windows[positions]), owner


def _bin_minima(hashes: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per text and bin (the hash's top 6 bits), the smallest low 32 bits; empty bins hold 0xFFFFFFFF."""
    keys = ((owner.astype(np.uint64) << _U64(38)) | ((hashes >> _U64(58)) << _U64(32))
            | (hashes & _U64(0xFFFFFFFF)))
    keys.sort()
    group = keys >> _U64(32)
    first = np.empty(keys.size, dtype=bool)
    first[:1] = True
    np.not_equal(group[1:], group[:-1], out=first[1:])
    table = np.full(count * NUM_BINS, _EMPTY, dtype=np.uint32)
    chosen = group[first]
    slots = (chosen >> _U64(6)).astype(np.int64) * NUM_BINS + (chosen & _U64(NUM_BINS - 1)).astype(np.int64)
    table[slots] = (keys[first] & _U64(0xFFFFFFFF)).astype(np.uint32)
    return table.reshape(count, NUM_BINS)


def _densify(table: np.ndarray) -> np.ndarray:
    """Fill empty bins from the next non-empty bin to the right (circular), shifted by the distance,
    so that identical texts agree on every bin and the match rate still estimates Jaccard."""
    empty = table == _EMPTY
    if empty.any():
        doubled = np.concatenate([table, table], axis=1)
        index = np.where(np.concatenate([~empty, ~empty], axis=1), np.arange(2 * NUM_BINS), 2 * NUM_BINS)
        nearest = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1][:, :NUM_BINS]
        rows, cols = np.nonzero(empty)
        source = nearest[rows, cols]
        distance = (source - cols).astype(np.uint32)
        table[rows, cols] = (doubled[rows, np.minimum(source, 2 * NUM_BINS - 1)]
                             + distance * np.uint32(0x9E3779B1))
    return (table & np.uint32(0xFFFF)).astype(np.uint16)


class SignatureStore:
    """Signatures of every example in chunks (no copy as it grows), addressed by a global row number."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = [np.empty((CHUNK_ROWS, NUM_BINS), dtype=np.uint16)]
        self.rows = 0

    def extend(self, block: np.ndarray) -> None:
        while block.size:
            chunk, offset = divmod(self.rows, CHUNK_ROWS)
            if chunk == len(self._chunks):
                self._chunks.append(np.empty((CHUNK_ROWS, NUM_BINS), dtype=np.uint16))
            take = min(CHUNK_ROWS - offset, len(block))
            self._chunks[chunk][offset:offset + take] = block[:take]
            self.rows += take
            block = block[take:]

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.size, NUM_BINS), dtype=np.uint16)
        chunk_of = rows // CHUNK_ROWS
        order = np.argsort(chunk_of, kind="stable")
        bounds = np.searchsorted(chunk_of[order], np.arange(len(self._chunks) + 1))
        for chunk, (start, end) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            if start < end:
                picked = order[start:end]
                out[picked] = self._chunks[chunk][rows[picked] - chunk * CHUNK_ROWS]
        return out

    def band_keys(self, rows: np.ndarray, band: int, width: int) -> np.ndarray:
        """One uint64 per row (rows ascending): the band's `width` bins combined (wrapping sums of distinct
        odd multiples, then mixed)."""
        weights = (np.arange(width, dtype=np.uint64) * _U64(2) + _U64(1)) * _U64(0x9E3779B97F4A7C15)
        keys = np.empty(rows.size, dtype=np.uint64)
        bounds = np.searchsorted(rows, np.arange(len(self._chunks) + 1) * CHUNK_ROWS)
        for chunk, (start, end) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            if start >= end:
                continue
            block = self._chunks[chunk][rows[start:end] - chunk * CHUNK_ROWS, band * width:(band + 1) * width]
            if width == 4:  # four 16-bit bins are one 64-bit key as they are
                keys[start:end] = mix64(block.view(np.uint64).ravel().copy())
            else:
                keys[start:end] = mix64((block.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64))
        return keys


@dataclass(frozen=True)
class Pairs:
    """Confirmed near-duplicate pairs (global rows, first < second) and their estimated similarity."""

    first: np.ndarray
    second: np.ndarray
    similarity: np.ndarray


@cache
def lsh_shape(threshold: float, recall: float = 0.97) -> tuple[int, int]:
    """(bands, rows per band) over NUM_BINS: the widest bands that still make a pair at exactly
    `threshold` a candidate with probability `recall` (wider bands mean fewer spurious candidates)."""
    best = (NUM_BINS, 1)
    for rows in range(2, 17):
        bands = NUM_BINS // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


def similar_pairs(store: SignatureStore, rows: np.ndarray, threshold: float,
                  across: np.ndarray | None = None) -> Pairs:
    """Pairs among `rows` whose estimated Jaccard similarity is at least `threshold`.

    With `across` (a bool per row), only pairs with one row on each side are returned. Each band's
    candidates are confirmed before the next band, so memory stays at one band's worth.
    """
    bands, width = lsh_shape(threshold)
    found = [np.empty((2, 0), dtype=np.int64)]
    for band in range(bands):
        keys = store.band_keys(rows, band, width)
        order = np.argsort(keys).astype(np.int32)
        ordered = keys[order]
        del keys
        starts = np.ones(order.size, dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        del ordered
        head = np.arange(order.size, dtype=np.int32)
        head[~starts] = 0
        np.maximum.accumulate(head, out=head)
        followers = np.flatnonzero(~starts)
        local = np.sort(np.stack([order[head[followers]], order[followers]]), axis=0).astype(np.int64)
        del head, order, starts
        if across is not None:
            local = local[:, across[local[0]] != across[local[1]]]
        found.append(local[:, _similarity(store, rows[local[0]], rows[local[1]]) >= threshold])
    local = np.unique(np.concatenate(found, axis=1), axis=1)
    first, second = rows[local[0]], rows[local[1]]
    return Pairs(first, second, _similarity(store, first, second))


def _similarity(store: SignatureStore, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    similarity = np.empty(first.size, dtype=np.float32)
    for start in range(0, first.size, 1 << 16):
        end = start + (1 << 16)
        similarity[start:end] = (store.take(first[start:end]) == store.take(second[start:end])).mean(axis=1)
    return similarity


def clusters(pairs: Pairs, rows: np.ndarray) -> list[np.ndarray]:
    """Groups of two or more rows linked by pairs (connected components), each sorted, in file order."""
    if pairs.first.size == 0:
        return []
    index = {int(r): i for i, r in enumerate(np.unique(np.concatenate([pairs.first, pairs.second])))}
    nodes = np.fromiter(index, dtype=np.int64, count=len(index))
    graph = coo_matrix((np.ones(pairs.first.size), ([index[int(r)] for r in pairs.first],
                                                    [index[int(r)] for r in pairs.second])),
                       shape=(nodes.size, nodes.size))
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    groups = np.split(nodes[order], np.flatnonzero(np.diff(labels[order])) + 1)
    return sorted((np.sort(g) for g in groups if g.size > 1), key=lambda g: int(g[0]))
