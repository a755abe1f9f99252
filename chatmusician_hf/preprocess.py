"""``chatmusician-hf preprocess``: tokenise, format and pack a training stage's data once, and save it to disk.

It reads the same recipe as the stage it prepares for (``--stage cpt`` or ``--stage sft``, parsed with that stage's
dataclasses, so every key of the recipe is accepted), and writes a ``save_to_disk`` folder with ``train`` and
(where there is one) ``validation`` splits plus ``preprocess_summary.json``:

- ``cpt``: packed blocks (``input_ids``, ``position_ids``) of the recipe's ``max_length``;
- ``sft``: ``input_ids`` + ``assistant_masks`` (+ ``messages``) per conversation; SFTTrainer packs them at training
  time, and the summary reports what BFD packing to ``max_length`` will give.

Point a recipe's ``dataset_name`` at the folder to train on it without preprocessing again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .configs import RecipeError, make_stage_parser
from .data.config import DataArguments

STAGE_CHOICES = ("cpt", "sft")


@dataclass
class PreprocessArguments:
    stage: str = field(
        default="cpt",
        metadata={
            "help": "Which training stage the data is for: 'cpt' (packed pretraining blocks) or 'sft' (tokenised "
            "conversations with loss masks). The recipe is read with that stage's options.",
            "choices": list(STAGE_CHOICES),
        },
    )
    preprocessed_dir: str = field(
        default="outputs/preprocessed",
        metadata={"help": "Folder to write the dataset to (datasets' save_to_disk layout) with its summary."},
    )
    include_validation: bool = field(
        default=True,
        metadata={"help": "Also write the evaluation split (dataset_test_split or the held-out rows)."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace preprocessed_dir if it already exists."}
    )


def stage_dataclasses(stage: str) -> list:
    """The dataclasses a stage's recipe is parsed with; preprocess adds its own to them."""
    from trl import ModelConfig

    if stage == "cpt":
        from .cpt import CPTConfig

        return [DataArguments, CPTConfig, ModelConfig]
    if stage == "sft":
        from .sft import ChatMusicianSFTConfig

        return [DataArguments, ChatMusicianSFTConfig, ModelConfig]
    raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGE_CHOICES)}")


class _StageParser:
    """Reads ``--stage`` first, then parses the recipe with that stage's dataclasses and :class:`PreprocessArguments`."""

    def __init__(self, subparsers=None):
        self.subparsers = subparsers

    def _parser_for(self, stage: str):
        return make_stage_parser(
            self.subparsers,
            "preprocess",
            [*stage_dataclasses(stage), PreprocessArguments],
            help="Tokenise, format and pack a stage's data once and save it (--stage cpt|sft).",
        )

    def parse_args_and_config(self, args=None):
        args = list(sys.argv[1:] if args is None else args)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--stage", choices=STAGE_CHOICES, default="cpt")
        known, _ = pre.parse_known_args(args)
        stage = known.stage
        if "--stage" not in args and "--config" in args:
            from .configs import load_recipe

            stage = load_recipe(args[args.index("--config") + 1]).get("stage", stage)
        return self._parser_for(stage).parse_args_and_config(args)

    def print_help(self):
        self._parser_for("cpt").print_help()


def make_parser(subparsers=None):
    return _StageParser(subparsers)


def _load_tokenizer(model_args):
    """The tokenizer the training stage will train with (the model folder's, or an adapter folder's own copy)."""
    from .training.loading import load_tokenizer_for_training

    if not model_args.model_name_or_path:
        raise RecipeError("preprocess: set model_name_or_path (its tokenizer is the one used).")
    return load_tokenizer_for_training(model_args)


def _splits(data_args: DataArguments, args: PreprocessArguments) -> list[str]:
    return [data_args.dataset_train_split] + (
        [data_args.dataset_test_split] if args.include_validation else []
    )


def _sft_summary(tokenized, max_length: int) -> dict:
    """Rows, tokens and tokens per src of tokenised SFT rows, and what BFD packing to ``max_length`` makes of them."""
    from trl.data_utils import pack_dataset

    lengths = [len(ids) for ids in tokenized["input_ids"]]
    per_src: dict[str, int] = {}
    for src, n in zip(tokenized["src"], lengths, strict=True):
        per_src[src] = per_src.get(src, 0) + n
    packed = pack_dataset(tokenized.select_columns(["input_ids"]), max_length, "bfd")
    blocks = len(packed)
    tokens = sum(lengths)
    return {
        "rows": len(lengths),
        "tokens": tokens,
        "loss_tokens": sum(sum(mask) for mask in tokenized["assistant_masks"]),
        "blocks": blocks,
        "max_length": max_length,
        "padding_fraction": 1 - tokens / (blocks * max_length) if blocks else 0.0,
        "tokens_per_src": per_src,
    }


def _print_summary(split: str, summary: dict) -> None:
    print(
        f"[preprocess] {split}: rows {summary['rows']:,}  tokens {summary['tokens']:,}  "
        f"blocks {summary['blocks']:,} x {summary['max_length']}  padding {summary['padding_fraction']:.2%}"
    )
    for src, tokens in sorted(summary["tokens_per_src"].items(), key=lambda kv: -kv[1]):
        print(f"[preprocess]   {src}: {tokens:,} tokens ({tokens / max(summary['tokens'], 1):.1%})")


def main(data_args: DataArguments, training_args, model_args, args: PreprocessArguments) -> Path:
    from datasets import Dataset, DatasetDict

    from .training.checks import check_training_recipe

    start = time.perf_counter()
    out = Path(args.preprocessed_dir)
    if out.exists() and not args.overwrite:
        raise RecipeError(f"preprocess: {out} exists; pass --overwrite to replace it.")
    tokenizer = _load_tokenizer(model_args)
    # The recipe is checked as the stage will check it, so a preprocess run also vets a recipe before a launch.
    check_training_recipe(model_args, training_args)
    max_length = training_args.max_length
    work = out.with_name(out.name + ".work")
    splits, summaries = {}, {}
    for split in _splits(data_args, args):
        if args.stage == "cpt":
            from .data.pretraining import pack_pretraining

            # Streaming writes straight to disk with bounded memory; otherwise the cache holds the blocks.
            target = work / split if data_args.streaming else None
            dataset, stats = pack_pretraining(data_args, tokenizer, max_length, split, output_path=target)
            summaries[split] = stats.to_dict()
        else:
            from .data.sft_format import SFT_OUTPUT_COLUMNS, tokenize_sft_rows
            from .data.sources import load_rows

            rows = load_rows(data_args, split, kind="sft")
            tokenized = tokenize_sft_rows(
                rows, tokenizer, max_length, training_args.max_prompt_length, data_args.num_proc
            )
            if not isinstance(tokenized, Dataset):  # streaming: materialise once, here
                tokenized = Dataset.from_generator(lambda t=tokenized: iter(t), features=tokenized.features)
            summaries[split] = _sft_summary(tokenized, max_length)
            dataset = tokenized.select_columns(list(SFT_OUTPUT_COLUMNS))
        _print_summary(split, summaries[split])
        splits[split] = dataset
    shutil.rmtree(out, ignore_errors=True)  # replaced only once the new data is complete
    DatasetDict(splits).save_to_disk(str(out))
    shutil.rmtree(work, ignore_errors=True)
    record = {
        "stage": args.stage,
        "max_length": max_length,
        "tokenizer": model_args.model_name_or_path,
        "splits": summaries,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "preprocess_summary.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"[preprocess] wrote {out} ({record['seconds']} s)")
    return out


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("preprocess")
