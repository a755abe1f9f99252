"""Pretraining data: tokenise documents in batches and pack them into blocks of ``max_length`` tokens.

Each document is tokenised without BOS, followed by EOS, and laid end to end with the others; the stream is cut
every ``max_length`` tokens. Nothing is dropped: a long document continues in the next block and the last, shorter
block is kept. ``position_ids`` count from 0 at every document start and at every block start, so attention
backends that read them (flash-attention varlen, TRL's padding-free collators) keep documents apart.

This differs from ChatMusician's own preprocessing, which tokenised row by row, added no EOS and did not pack: a
2048-token context then held one short tune and padding.

Map-style datasets are tokenised with ``datasets.map`` (``num_proc`` processes) and the packed blocks are written
once to an Arrow file under ``data_cache_dir``, in a folder named by a hash of the rows' fingerprint, the tokenizer
and the settings; a second call with the same inputs opens that file instead of tokenising again. Streaming datasets
are tokenised and packed lazily, one batch in memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import DataArguments, cache_dir
from .sources import DatasetSourceError, describe_sources, load_preprocessed, load_rows

logger = logging.getLogger(__name__)

TOKENIZE_BATCH_SIZE = 1000


def source_digest(*modules) -> str:
    """A hash of the given modules' source code. ``datasets`` fingerprints a module-level map function by its name
    only, so cache keys include this to never reuse results of an older version of the code."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Tokenisation


# Words the BPE model remembers. The tokenizers default (10,000) thrashes on ABC, whose "words" (``B2B2``,
# ``cBAG|A2B2``) are many and repeat across tunes; a larger cache measured ~1.3x faster, with identical ids.
BPE_WORD_CACHE = 1_000_000
# (id(backend), vocabulary size) -> (backend, encoder). Holding the backend keeps its id from being reused; the size
# notices tokens added later (e.g. a <pad> token added before training).
_ENCODERS: dict[tuple[int, int], tuple] = {}


def _batch_encoder(backend):
    """A private copy of a Rust tokenizer with a larger BPE word cache (the caller's tokenizer is left as it is)."""
    key = (id(backend), backend.get_vocab_size(with_added_tokens=True))
    cached = _ENCODERS.get(key)
    if cached is None:
        from tokenizers import Tokenizer

        encoder = Tokenizer.from_str(backend.to_str())
        if hasattr(encoder.model, "_resize_cache"):  # BPE models only, tokenizers >= 0.20
            encoder.model._resize_cache(BPE_WORD_CACHE)
        cached = _ENCODERS[key] = (backend, encoder)
    return cached[1]


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]``, through the Rust backend when there is one.

    The backend's batch encoder returns the same ids without building the per-token offsets and masks that the
    transformers wrapper converts to Python objects, which is most of the wrapper's cost on short documents.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    encoder = _batch_encoder(backend)
    encode = getattr(encoder, "encode_batch_fast", encoder.encode_batch)
    return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]


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


def _require_eos(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise DatasetSourceError("The tokenizer has no EOS token; packing needs one to separate documents.")
    return tokenizer.eos_token_id


def tokenize_documents(batch: dict, tokenizer, eos_token_id: int) -> dict:
    """A ``datasets.map`` batch function: ``text`` -> ``input_ids`` (document + EOS), ``src`` kept."""
    texts = [text or "" for text in batch["text"]]
    ids = encode_texts(tokenizer, texts)
    return {"input_ids": [doc + [eos_token_id] for doc in ids], "src": batch["src"]}


# --------------------------------------------------------------------------------------------------------------------
# Transposition augmentation


def is_abc_tune(text: str) -> bool:
    """Rows that are one whole ABC tune (the only rows transposition can rewrite safely)."""
    return text.lstrip().startswith("X:") and "\nK:" in text


def transposition_choices(text: str, k: int, seed: int) -> list[int]:
    """``k`` distinct non-zero shifts in [-5, 6] semitones, fixed by the tune's text and the seed."""
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "big")
    )
    shifts = [s for s in range(-5, 7) if s != 0]
    return [int(s) for s in rng.choice(shifts, size=min(k, len(shifts)), replace=False)]


def load_transpose_abc():
    try:
        from ..music import transpose_abc
    except ImportError as err:
        raise DatasetSourceError(
            "transpose_augment needs chatmusician_hf.music.transpose_abc, which is not available "
            f"({err}); set transpose_augment: 0."
        ) from None
    return transpose_abc


def add_transpositions(batch: dict, k: int, seed: int, transpose_abc) -> dict:
    """A ``datasets.map`` batch function: every ABC tune, then ``k`` transpositions of it (src + '/transposed')."""
    out: dict[str, list] = {"text": [], "src": []}
    for text, src in zip(batch["text"], batch["src"], strict=True):
        out["text"].append(text)
        out["src"].append(src)
        if not text or not is_abc_tune(text):
            continue
        for shift in transposition_choices(text, k, seed):
            try:
                transposed = transpose_abc(text, shift)
            except Exception as err:  # noqa: BLE001 - a tune the ABC layer cannot read keeps only its original
                logger.debug("skipping transposition %+d: %s", shift, err)
                continue
            out["text"].append(transposed)
            out["src"].append(f"{src}/transposed")
    return out


# --------------------------------------------------------------------------------------------------------------------
# Packing


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


def iter_token_batches(
    tokenized, batch_size: int = TOKENIZE_BATCH_SIZE
) -> Iterator[tuple[np.ndarray, np.ndarray, list]]:
    """(flat ids, document lengths, src per document) for each batch of a tokenised dataset, read as Arrow."""
    import pyarrow.compute as pc

    for table in tokenized.with_format("arrow").iter(batch_size=batch_size):
        column = table.column("input_ids").combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        yield flat, lengths, table.column("src").to_pylist()


def pack_token_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray, list]], max_length: int, stats: PackingStats | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks (ids, positions), one pair per block, in order; the last may be shorter than ``max_length``."""
    packer = BlockPacker(max_length)
    for flat, lengths, srcs in batches:
        if stats is not None:
            stats.rows += len(lengths)
            stats.tokens += int(lengths.sum())
            per_src = Counter()
            for src, n in zip(srcs, lengths.tolist(), strict=True):
                per_src[src] += n
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


# --------------------------------------------------------------------------------------------------------------------
# The pretraining dataset


def _prepared_rows(data_args: DataArguments, split: str):
    rows = load_rows(data_args, split, kind="text")
    if data_args.transpose_augment:
        transpose_abc = load_transpose_abc()
        kwargs = {} if data_args.streaming else {"num_proc": data_args.num_proc, "desc": "Transposing tunes"}
        rows = rows.map(
            add_transpositions,
            batched=True,
            fn_kwargs={
                "k": data_args.transpose_augment,
                "seed": data_args.dataset_seed,
                "transpose_abc": transpose_abc,
            },
            **kwargs,
        )
    return rows


def _tokenized(rows, tokenizer, data_args: DataArguments):
    import sys

    from datasets import Dataset, Features, List, Value

    eos = _require_eos(tokenizer)
    kwargs = dict(
        batched=True,
        batch_size=TOKENIZE_BATCH_SIZE,
        fn_kwargs={"tokenizer": tokenizer, "eos_token_id": eos},
        remove_columns=["text"],
        features=Features({"src": Value("string"), "input_ids": List(Value("int32"))}),
    )
    if isinstance(rows, Dataset):
        fingerprint = "|".join(
            [rows._fingerprint, tokenizer_fingerprint(tokenizer), source_digest(sys.modules[__name__])]
        )
        kwargs.update(
            num_proc=data_args.num_proc,
            desc="Tokenizing",
            new_fingerprint=hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
        )
    return rows.map(tokenize_documents, **kwargs)


def _stream_blocks(tokenized, max_length: int):
    for ids, positions in pack_token_batches(iter_token_batches(tokenized), max_length):
        yield {"input_ids": ids.tolist(), "position_ids": positions.tolist()}


def pack_pretraining(
    data_args: DataArguments,
    tokenizer,
    max_length: int,
    split: str = "train",
    output_path: Path | None = None,
):
    """Packed blocks and their :class:`PackingStats`.

    Map-style: blocks are written to the cache (or to ``output_path``) and returned as a memory-mapped ``Dataset``.
    Streaming without ``output_path``: a lazy ``IterableDataset`` and ``None`` for stats (they are only known once the
    stream has been read); with ``output_path`` the stream is written there with bounded memory.
    """
    import sys

    from datasets import Dataset, IterableDataset
    from tqdm.auto import tqdm

    rows = _prepared_rows(data_args, split)
    if data_args.streaming and output_path is None:
        tokenized = _tokenized(rows, tokenizer, data_args)
        return IterableDataset.from_generator(
            _stream_blocks, gen_kwargs={"tokenized": tokenized, "max_length": max_length}
        ), None

    if output_path is None:
        key = hashlib.sha256(
            "|".join(
                [
                    source_digest(sys.modules[__name__]),
                    rows._fingerprint,
                    describe_sources(data_args, split),
                    tokenizer_fingerprint(tokenizer),
                    str(max_length),
                    str(data_args.transpose_augment),
                    str(data_args.dataset_seed),
                ]
            ).encode()
        ).hexdigest()[:20]
        folder = cache_dir(data_args) / "pretraining" / key
        blocks_path, stats_path = folder / "blocks.arrow", folder / "stats.json"
        if stats_path.is_file() and blocks_path.is_file():
            logger.info("Reusing packed blocks from %s", folder)
            stats = PackingStats(
                **{k: v for k, v in json.loads(stats_path.read_text()).items() if k != "padding_fraction"}
            )
            return Dataset.from_file(str(blocks_path)), stats
    else:
        folder = Path(output_path)
        blocks_path, stats_path = folder / "blocks.arrow", folder / "stats.json"
    folder.mkdir(parents=True, exist_ok=True)

    tokenized = _tokenized(rows, tokenizer, data_args)
    stats = PackingStats(max_length=max_length)
    total = None if data_args.streaming else len(tokenized)
    with tqdm(total=total, unit="rows", desc=f"Packing {split} into {max_length}-token blocks") as bar:

        def batches():
            for batch in iter_token_batches(tokenized):
                yield batch
                bar.update(len(batch[1]))
                bar.set_postfix(tokens=f"{stats.tokens:,}", blocks=f"{stats.blocks:,}", refresh=False)

        partial = blocks_path.with_suffix(".arrow.partial")
        write_blocks(pack_token_batches(batches(), max_length, stats), partial)
    os.replace(partial, blocks_path)
    # stats.json is written last: its presence marks a complete cache entry.
    stats_path.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    return Dataset.from_file(str(blocks_path)), stats


def build_pretraining_dataset(data_args: DataArguments, tokenizer, max_length: int, split: str = "train"):
    """Packed pretraining blocks with columns ``input_ids`` and ``position_ids`` (a ``Dataset``, or an
    ``IterableDataset`` when ``data_args.streaming``). See the module docstring for the layout and the cache.

    When ``dataset_name`` is a ``chatmusician-hf preprocess --stage cpt`` folder, its blocks are used as they are."""
    preprocessed = load_preprocessed(data_args, split, BLOCK_SCHEMA_FIELDS)
    if preprocessed is not None:
        dataset, summary = preprocessed
        if summary.get("max_length") != max_length:
            raise DatasetSourceError(
                f"{data_args.dataset_name}: packed to {summary.get('max_length')} tokens, but max_length is "
                f"{max_length}; preprocess again with this max_length."
            )
        return dataset
    return pack_pretraining(data_args, tokenizer, max_length, split)[0]
