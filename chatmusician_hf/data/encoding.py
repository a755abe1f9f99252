"""Batch tokenisation with the tokenizer's own ids, fast: the piece encoder where it applies, else the Rust batch
encoder; and documents tokenised for packing (EOS after each).

``pieces=False`` always uses the Rust batch encoder (same ids; the preprocessing benchmark reports both).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ..errors import DatasetSourceError
from .piece_encoder import PieceEncoder, PieceMismatch, per_text

logger = logging.getLogger(__name__)

# Words the BPE model remembers. The tokenizers default (10,000) thrashes on ABC, whose "words" (``B2B2``,
# ``cBAG|A2B2``) are many and repeat across tunes; a larger cache measured ~1.3x faster, with identical ids.
BPE_WORD_CACHE = 1_000_000


@dataclass
class Encoders:
    """A private copy of a tokenizer's Rust backend with a larger BPE word cache and no truncation or padding (the
    caller's tokenizer is left as it is), and the piece encoder when it applies."""

    backend: object  # held so that its id, part of the cache key, is not reused
    rust: object
    pieces: PieceEncoder | None


# (id(backend), vocabulary size, pieces wanted) -> Encoders. The size notices tokens added later (e.g. a <pad>
# token added before training).
_CACHE: dict[tuple[int, int, bool], Encoders] = {}


def encoders(backend, pieces: bool = True) -> Encoders:
    """The (cached) encoders of a Rust tokenizer backend; ``pieces=False`` builds no piece encoder."""
    key = (id(backend), backend.get_vocab_size(with_added_tokens=True), pieces)
    cached = _CACHE.get(key)
    if cached is None:
        from tokenizers import Tokenizer

        rust = Tokenizer.from_str(backend.to_str())
        rust.no_truncation()
        rust.no_padding()
        if hasattr(rust.model, "_resize_cache"):  # BPE models only, tokenizers >= 0.20
            rust.model._resize_cache(BPE_WORD_CACHE)
        piece_encoder = None
        if pieces:
            try:
                piece_encoder = PieceEncoder(backend, rust)
            except (ValueError, KeyError, PieceMismatch) as err:
                logger.debug("tokenising with the Rust batch encoder (no piece encoder: %s)", err)
        cached = _CACHE[key] = Encoders(backend, rust, piece_encoder)
    return cached


def clear_encoder_cache() -> None:
    """Forget every cached encoder (a benchmark measuring a cold start)."""
    _CACHE.clear()


def encode_batch(tokenizer, texts: list[str], pieces: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]`` as (all ids end to end, int32; ids per text).

    Through the :class:`PieceEncoder` when the tokenizer allows it (and ``pieces``), else the Rust backend's batch
    encoder, which returns the same ids without the per-token offsets and masks that the transformers wrapper
    converts to Python objects; a tokenizer without a Rust backend is called as it is.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    else:
        cached = encoders(backend, pieces)
        if cached.pieces is not None:
            try:
                return cached.pieces.encode(texts)
            except PieceMismatch as err:
                logger.warning(
                    "piece encoder differs from the tokenizer on %r; using the Rust encoder", err.args[0][:80]
                )
                cached.pieces = None
        encode = getattr(cached.rust, "encode_batch_fast", cached.rust.encode_batch)
        ids = [encoding.ids for encoding in encode(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]``, computed by :func:`encode_batch`."""
    if not texts:
        return []
    flat, lengths = encode_batch(tokenizer, texts)
    return [part.tolist() for part in per_text(flat, lengths)]


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything about the tokenizer that changes the ids it produces."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        from datasets.fingerprint import Hasher

        digest.update(Hasher.hash(tokenizer).encode())
    digest.update(f"{type(tokenizer).__name__}|{tokenizer.eos_token_id}".encode())
    return digest.hexdigest()[:16]


def require_eos(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise DatasetSourceError("The tokenizer has no EOS token; packing needs one to separate documents.")
    return tokenizer.eos_token_id


def tokenize_documents(
    texts: list, srcs: list, tokenizer, eos_token_id: int, pieces: bool = True
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Documents (EOS appended to each) as (all ids end to end, ids per document, tokens per src)."""
    flat, lengths = encode_batch(tokenizer, [text or "" for text in texts], pieces)
    ends = np.cumsum(lengths + 1)
    out = np.empty(len(flat) + len(lengths), dtype=np.int32)
    keep = np.ones(len(out), dtype=bool)
    keep[ends - 1] = False
    out[keep] = flat
    out[ends - 1] = eos_token_id
    lengths = lengths + 1
    per_src: Counter = Counter()
    for src, n in zip(srcs, lengths.tolist(), strict=True):
        per_src[src] += n
    return out, lengths, dict(per_src)
