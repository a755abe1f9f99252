"""The pretraining dataset: rows from the recipe's sources (transposed when asked), tokenised, packed, cached.

Tokenisation goes through the piece encoder when the tokenizer's pipeline allows it (:mod:`.piece_encoder`), else
the Rust batch encoder; the ids are the tokenizer's either way. Map-style datasets are tokenised by
:func:`~chatmusician_hf.data.token_batches.map_token_batches` (in ``num_proc`` forked workers), packed in order
(:mod:`.packing`) and written once to an Arrow file under ``data_cache_dir``, in a folder named by a hash of the
rows' fingerprint, the tokenizer, the settings and the code that makes blocks; a second call with the same inputs
opens that file instead of tokenising again. Streaming datasets are tokenised and packed lazily, one batch in
memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from . import augment, encoding, packing, piece_encoder, pretokenize, token_batches
from .augment import add_transpositions, load_transpose_abc
from .config import DataArguments, cache_dir, source_digest
from .encoding import require_eos, tokenizer_fingerprint
from .packing import BLOCK_SCHEMA_FIELDS, PackingStats, pack_token_batches, write_blocks
from .sources import describe_sources, load_preprocessed, load_rows
from .token_batches import DEFAULT_TOKENIZATION, Tokenization, map_token_batches, stream_token_batches

logger = logging.getLogger(__name__)

# The modules whose code decides the blocks, besides this one: a change to any of them makes new cache entries.
_BLOCK_MAKERS = (augment, encoding, packing, piece_encoder, pretokenize, token_batches)


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


def _stream_blocks(rows, tokenizer, eos: int, max_length: int, tokenization: Tokenization):
    for ids, positions in pack_token_batches(stream_token_batches(rows, tokenizer, eos, tokenization), max_length):
        yield {"input_ids": ids.tolist(), "position_ids": positions.tolist()}


def pack_pretraining(
    data_args: DataArguments,
    tokenizer,
    max_length: int,
    split: str = "train",
    output_path: Path | None = None,
    tokenization: Tokenization = DEFAULT_TOKENIZATION,
):
    """Packed blocks and their :class:`PackingStats`.

    Map-style: blocks are written to the cache (or to ``output_path``) and returned as a memory-mapped ``Dataset``.
    Streaming without ``output_path``: a lazy ``IterableDataset`` and ``None`` for stats (they are only known once the
    stream has been read); with ``output_path`` the stream is written there with bounded memory. ``tokenization``
    changes speed only, never the blocks.
    """
    from datasets import Dataset, IterableDataset
    from tqdm.auto import tqdm

    rows = _prepared_rows(data_args, split)
    eos = require_eos(tokenizer)
    if data_args.streaming and output_path is None:
        return IterableDataset.from_generator(
            _stream_blocks,
            gen_kwargs={"rows": rows, "tokenizer": tokenizer, "eos": eos, "max_length": max_length,
                        "tokenization": tokenization},
        ), None

    if output_path is None:
        key = hashlib.sha256(
            "|".join(
                [
                    source_digest(sys.modules[__name__], *_BLOCK_MAKERS),
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

    stats = PackingStats(max_length=max_length)
    if data_args.streaming:
        token_batches, total = stream_token_batches(rows, tokenizer, eos, tokenization), None
    else:
        token_batches, total = map_token_batches(rows, tokenizer, eos, data_args.num_proc, tokenization), len(rows)
    with tqdm(total=total, unit="rows", desc=f"Packing {split} into {max_length}-token blocks") as bar:

        def batches():
            for batch in token_batches:
                yield batch
                bar.update(len(batch[1]))
                bar.set_postfix(tokens=f"{stats.tokens:,}", blocks=f"{stats.blocks:,}", refresh=False)

        # Per process: two runs packing the same data at once (two launches, two ranks) each finish their own
        # file and the later rename wins with the same blocks.
        partial = blocks_path.with_suffix(f".arrow.partial-{os.getpid()}")
        write_blocks(pack_token_batches(batches(), max_length, stats), partial)
    os.replace(partial, blocks_path)
    # stats.json is written last: its presence marks a complete cache entry.
    stats_path.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    return Dataset.from_file(str(blocks_path)), stats


def build_pretraining_dataset(data_args: DataArguments, tokenizer, max_length: int, split: str = "train"):
    """Packed pretraining blocks with columns ``input_ids`` and ``position_ids`` (a ``Dataset``, or an
    ``IterableDataset`` when ``data_args.streaming``). See the module docstring for the layout and the cache.

    When ``dataset_name`` is a ``chatmusician-hf preprocess --stage cpt`` folder, its blocks are used as they are."""
    preprocessed = load_preprocessed(data_args, split, BLOCK_SCHEMA_FIELDS, max_length)
    if preprocessed is not None:
        return preprocessed
    return pack_pretraining(data_args, tokenizer, max_length, split)[0]
