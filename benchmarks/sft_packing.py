"""SFT packing efficiency: share of non-padding tokens per batch, BFD-packed vs padded batches of the same rows.

Rows: the music21 SFT task set (``music21-tasks``) tokenised by ``build_sft_dataset`` in the ChatMusician format.
Padded: batches of ``--batch_size`` rows in random order, each padded to its longest row (what a collator without
packing does). Packed: TRL's ``pack_dataset(..., "bfd")`` to ``--max_length``, which SFTTrainer uses with
``packing: true``; its blocks are batched and padded the same way. (With TRL's padding-free collator, which BFD
packing turns on, no padding is added at all.)

    python benchmarks/sft_packing.py --tokenizer outputs/tiny-base
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def non_padding_share(lengths: np.ndarray, batch_size: int) -> float:
    """Real tokens / (batches x longest row in each batch)."""
    total = 0
    for start in range(0, len(lengths), batch_size):
        batch = lengths[start : start + batch_size]
        total += batch.max() * len(batch)
    return float(lengths.sum() / total)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokenizer", help="Tokenizer folder (default: build the tiny one with init-tiny).")
    parser.add_argument("--max_length", type=int, default=2048)
    parser.add_argument("--max_prompt_length", type=int, default=1536)
    parser.add_argument("--batch_size", type=int, default=8, help="Rows (or packed blocks) per batch.")
    parser.add_argument("--rows", type=int, default=20000, help="Rows of the task set to use.")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer
    from trl.data_utils import pack_dataset

    from chatmusician_hf.data.config import DataArguments
    from chatmusician_hf.data.sft_format import build_sft_dataset

    with tempfile.TemporaryDirectory(prefix="cm-sft-bench-") as tmp:
        tok_path = args.tokenizer
        if tok_path is None:
            from chatmusician_hf.tiny import InitTinyArguments
            from chatmusician_hf.tiny import main as init_tiny

            tok_path = str(init_tiny(InitTinyArguments(output_dir=str(Path(tmp) / "tiny"))))
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
        rows = build_sft_dataset(
            DataArguments(dataset_name="music21-tasks"), tokenizer, args.max_length, args.max_prompt_length
        ).select_columns(["input_ids"])
        rows = rows.shuffle(seed=args.seed).select(range(min(args.rows, len(rows))))
        lengths = np.array([len(ids) for ids in rows["input_ids"]])
        packed = pack_dataset(rows, args.max_length, "bfd")
        block_lengths = np.array([len(ids) for ids in packed["input_ids"]])
        rng = np.random.default_rng(args.seed)
        padded = non_padding_share(lengths, args.batch_size)
        bfd = non_padding_share(block_lengths[rng.permutation(len(block_lengths))], args.batch_size)
    assert block_lengths.sum() == lengths.sum(), "BFD packing lost tokens"
    print(
        f"rows {len(lengths):,}  tokens {lengths.sum():,}  mean row {lengths.mean():.0f}  max row {lengths.max()}"
    )
    print(f"padded batches of {args.batch_size} rows      : {padded:.1%} non-padding")
    print(
        f"BFD-packed blocks of {args.max_length}, batches of {args.batch_size}: {bfd:.1%} non-padding (target >= 95%)"
    )
    print(f"tokens per batch slot: {bfd / padded:.2f}x")
    return {
        "rows": len(lengths),
        "padded_non_padding": padded,
        "packed_non_padding": bfd,
        "blocks": len(block_lengths),
    }


if __name__ == "__main__":
    main()
