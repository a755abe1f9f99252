"""Rows of a dataset as tokenised batches (:func:`~chatmusician_hf.data.encoding.tokenize_documents` results), in
row order: lazily for streaming datasets, and for map-style ones optionally in forked worker processes.

Map-style datasets are cut into row ranges that ``num_proc`` forked processes tokenise, each reading its range from
the memory-mapped Arrow table and sending back numpy arrays; at most two ranges per worker are in flight, so memory
stays bounded on any corpus size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .encoding import encode_batch, tokenize_documents


@dataclass(frozen=True)
class Tokenization:
    """How rows are tokenised: rows per batch, and whether the piece encoder may be used (same ids either way)."""

    batch_size: int = 1000
    pieces: bool = True


DEFAULT_TOKENIZATION = Tokenization()


def tokenize_table(table, tokenizer, eos: int, tokenization: Tokenization) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`tokenize_documents` of an Arrow slice of the rows."""
    texts, srcs = table.column("text").to_pylist(), table.column("src").to_pylist()
    return tokenize_documents(texts, srcs, tokenizer, eos, tokenization.pieces)


def stream_token_batches(
    rows, tokenizer, eos: int, tokenization: Tokenization
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Tokenised batches of a streaming dataset, one batch in memory at a time."""
    for batch in rows.iter(batch_size=tokenization.batch_size):
        yield tokenize_documents(batch["text"], batch["src"], tokenizer, eos, tokenization.pieces)


# The rows and tokenizer of a worker process (set before the fork, read by _tokenize_range).
_WORKER: dict = {}


def _tokenize_range(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict]:
    return tokenize_table(
        _WORKER["rows"][bounds[0] : bounds[1]], _WORKER["tokenizer"], _WORKER["eos"], _WORKER["tokenization"]
    )


def map_token_batches(
    rows, tokenizer, eos: int, num_proc: int | None, tokenization: Tokenization = DEFAULT_TOKENIZATION
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Tokenised batches of a map-style dataset, in row order, in ``num_proc`` forked workers when above 1."""
    import multiprocessing
    from collections import deque

    arrow_rows = rows.with_format("arrow")
    n = len(rows)
    workers = min(num_proc or 1, os.cpu_count() or 1)
    if workers > 1 and (
        "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon
    ):
        workers = 1  # no fork (Windows), or already inside a worker process, which may not have children
    batch = tokenization.batch_size
    size = batch if workers == 1 else int(np.clip(-(-n // (workers * 8)), batch, 16384))
    ranges = [(start, min(start + size, n)) for start in range(0, n, size)]
    if workers == 1 or len(ranges) < 2:
        for start, stop in ranges:
            yield tokenize_table(arrow_rows[start:stop], tokenizer, eos, tokenization)
        return
    # build the encoders once, before the fork, so the workers inherit them
    encode_batch(tokenizer, [""], tokenization.pieces)
    _WORKER.update(rows=arrow_rows, tokenizer=tokenizer, eos=eos, tokenization=tokenization)
    # The workers are the parallelism: one Rust thread each, and no tokenizers warning about forking after its
    # thread pool was used (the setting is the parent's again once the workers exist).
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = multiprocessing.get_context("fork").Pool(workers)
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous
    try:
        with pool:
            pending: deque = deque()
            for bounds in ranges:
                pending.append(pool.apply_async(_tokenize_range, (bounds,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _WORKER.clear()
