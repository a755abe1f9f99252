"""Packing: documents laid end to end and cut into blocks of ``max_length`` tokens, written once to Arrow.

Each document is tokenised without BOS, followed by EOS (:func:`~chatmusician_hf.data.encoding.tokenize_documents`).
Nothing is dropped: a long document continues in the next block and the last, shorter block is kept.
``position_ids`` count from 0 at every document start and at every block start, so attention backends that read
them (flash-attention varlen, TRL's padding-free collators) keep documents apart.

This differs from ChatMusician's own preprocessing, which tokenised row by row, added no EOS and did not pack: a
2048-token context then held one short tune and padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


class BlockPacker:
    """Lays documents end to end and cuts full blocks of ``max_length``; the remainder waits for the next call."""

    def __init__(self, max_length: int):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        self._ids = np.zeros(0, dtype=np.int32)
        self._positions = np.zeros(0, dtype=np.int32)

    def add(self, flat_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append documents (``flat_ids`` split by ``lengths``); return the full blocks as two (n, max_length) arrays."""
        length = self.max_length
        carried = len(self._ids)
        lengths = np.asarray(lengths, dtype=np.int64)
        index = np.arange(carried, carried + len(flat_ids), dtype=np.int64)
        doc_start = np.repeat(np.cumsum(lengths) - lengths + carried, lengths)
        block_start = (index // length) * length
        # A token's position counts from its document's start, or from its block's start when the document began in
        # an earlier block.
        positions = (index - np.maximum(doc_start, block_start)).astype(np.int32)
        ids = np.concatenate([self._ids, np.asarray(flat_ids, dtype=np.int32)])
        positions = np.concatenate([self._positions, positions])
        full = len(ids) // length * length
        self._ids, self._positions = ids[full:], positions[full:]
        return ids[:full].reshape(-1, length), positions[:full].reshape(-1, length)

    def flush(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last, partial block (or None when the stream ended on a block boundary)."""
        if not len(self._ids):
            return None
        ids, positions = self._ids, self._positions
        self._ids, self._positions = ids[:0], positions[:0]
        return ids, positions


@dataclass
class PackingStats:
    """What packing produced; ``padding_fraction`` is the share of a (blocks x max_length) grid left empty."""

    max_length: int
    rows: int = 0
    tokens: int = 0
    blocks: int = 0
    tokens_per_src: dict[str, int] = field(default_factory=dict)

    @property
    def padding_fraction(self) -> float:
        capacity = self.blocks * self.max_length
        return 1 - self.tokens / capacity if capacity else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "padding_fraction": self.padding_fraction}

    def summary(self) -> str:
        lines = [
            f"rows {self.rows:,}  tokens {self.tokens:,}  blocks {self.blocks:,} x {self.max_length}  "
            f"padding {self.padding_fraction:.2%}"
        ]
        for src, tokens in sorted(self.tokens_per_src.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {src}: {tokens:,} tokens ({tokens / max(self.tokens, 1):.1%})")
        return "\n".join(lines)


def pack_token_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray, dict]], max_length: int, stats: PackingStats | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks (ids, positions), one pair per block, in order; the last may be shorter than ``max_length``.

    ``batches`` are :func:`tokenize_documents` results: (all ids end to end, ids per document, tokens per src)."""
    packer = BlockPacker(max_length)
    for flat, lengths, per_src in batches:
        if stats is not None:
            stats.rows += len(lengths)
            stats.tokens += int(lengths.sum())
            for src, n in per_src.items():
                stats.tokens_per_src[src] = stats.tokens_per_src.get(src, 0) + n
        ids, positions = packer.add(flat, lengths)
        if stats is not None:
            stats.blocks += len(ids)
        yield from zip(ids, positions, strict=True)
    last = packer.flush()
    if last is not None:
        if stats is not None:
            stats.blocks += 1
        yield last


BLOCK_SCHEMA_FIELDS = ("input_ids", "position_ids")


def write_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], path: Path, rows_per_batch: int = 256
) -> None:
    """Stream blocks into an Arrow IPC stream file (the format ``datasets`` memory-maps), a few hundred at a time."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.list_(pa.int32())) for name in BLOCK_SCHEMA_FIELDS])

    def flush(pending, writer):
        columns = []
        for j in range(2):
            parts = [block[j] for block in pending]
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int32)
            columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(parts))))
        writer.write_batch(pa.record_batch(columns, schema=schema))

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        pending = []
        for block in blocks:
            pending.append(block)
            if len(pending) >= rows_per_batch:
                flush(pending, writer)
                pending = []
        if pending:
            flush(pending, writer)
