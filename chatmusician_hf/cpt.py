"""``chatmusician-hf cpt``: continued pretraining on packed music text, ChatMusician's first stage.

LoRA on the attention and MLP projections plus fully trained ``embed_tokens`` and ``lm_head`` copies with their own
learning rate (the paper's recipe), on packed blocks whose documents do not attend to each other. Runs as

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml -m chatmusician_hf.cpt \\
        --config recipes/chatmusician-7b/cpt.yaml

and on the embedded default with ``recipes/tiny/cpt.yaml`` (every weight of the random tiny base trained) or
``recipes/tiny/cpt_lora.yaml`` (the 7B path at tiny size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import Trainer, TrainingArguments
from trl import ModelConfig

from .configs import make_stage_parser
from .data.config import DataArguments
from .training.arguments import EmbeddingTrainingArguments
from .training.optimizer import EmbeddingLearningRateMixin
from .training.run import run_training


@dataclass
class CPTConfig(TrainingArguments, EmbeddingTrainingArguments):
    """``transformers.TrainingArguments`` plus the continued-pretraining options."""

    max_length: int = field(default=2048, metadata={"help": "Tokens per packed block (ChatMusician: 2048)."})
    report_to: str | list[str] = field(
        default="none",
        metadata={"help": "Where to log: none, tensorboard, trackio, wandb, ... (comma-separated)."},
    )


@dataclass
class PackedBlockCollator:
    """Stacks packed blocks; pads a short final block as a separate pseudo-document that no loss touches.

    No attention mask is passed: with per-document ``position_ids`` transformers builds a block-diagonal causal mask,
    so documents in a block do not see each other. A document's first token is not predicted from the previous
    document either (its label is -100).
    """

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        length = max(len(e["input_ids"]) for e in examples)
        input_ids, position_ids, labels = [], [], []
        for example in examples:
            ids, positions = list(example["input_ids"]), list(example["position_ids"])
            pad = length - len(ids)
            block_labels = [-100 if p == 0 else t for t, p in zip(ids, positions)]
            input_ids.append(ids + [self.pad_token_id] * pad)
            position_ids.append(positions + list(range(pad)))
            labels.append(block_labels + [-100] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "position_ids": torch.tensor(position_ids),
            "labels": torch.tensor(labels),
        }


class CPTTrainer(EmbeddingLearningRateMixin, Trainer):
    """``Trainer`` whose only change is the optimizer: trained embeddings get their own learning rate, no decay."""


def main(data_args: DataArguments, training_args: CPTConfig, model_args: ModelConfig):
    from .data.pretraining import build_pretraining_dataset

    def build_dataset(tokenizer, split):
        return build_pretraining_dataset(data_args, tokenizer, training_args.max_length, split=split)

    return run_training(
        "cpt", data_args, training_args, model_args, build_dataset, CPTTrainer, "packing the pretraining corpus",
        collator=lambda tokenizer: PackedBlockCollator(tokenizer.pad_token_id),
    )


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "cpt",
        [DataArguments, CPTConfig, ModelConfig],
        help="Continued pretraining: LoRA + trained embeddings on packed music text (accelerate-launchable).",
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("cpt")
