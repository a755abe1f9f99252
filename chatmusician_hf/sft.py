"""``chatmusician-hf sft``: supervised fine-tuning with TRL's ``SFTTrainer`` in the ChatMusician chat format.

Conversations are rendered by the tokenizer's chat template (``Human: ... </s> Assistant: ... </s>``) and only the
answers and their closing ``</s>`` carry loss. ``model_name_or_path`` may be a merged model or a CPT adapter folder
(its base is loaded and the adapter merged in memory). Runs as

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml -m chatmusician_hf.sft \\
        --config recipes/chatmusician-7b/sft.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, SFTConfig, SFTTrainer

from .configs import make_stage_parser
from .data.config import DataArguments
from .training.arguments import EmbeddingTrainingArguments
from .training.optimizer import EmbeddingLearningRateMixin
from .training.run import run_training


@dataclass
class ChatMusicianSFTConfig(SFTConfig, EmbeddingTrainingArguments):
    """``trl.SFTConfig`` plus the embedding options, with ChatMusician's lengths and assistant-only loss."""

    max_length: int | None = field(
        default=2048, metadata={"help": "Longest training sequence (ChatMusician: 2048)."}
    )
    max_prompt_length: int = field(
        default=1536,
        metadata={"help": "Prompts are cut to this many tokens before the answer (ChatMusician: 1536)."},
    )
    assistant_only_loss: bool = field(
        default=True,
        metadata={"help": "Loss on the answers only (ChatMusician did this); needs generation markers."},
    )
    report_to: str | list[str] = field(
        default="none",
        metadata={"help": "Where to log: none, tensorboard, trackio, wandb, ... (comma-separated)."},
    )


class ChatMusicianSFTTrainer(EmbeddingLearningRateMixin, SFTTrainer):
    """``SFTTrainer`` whose only change is the optimizer: trained embeddings get their own learning rate."""


def main(data_args: DataArguments, training_args: ChatMusicianSFTConfig, model_args: ModelConfig):
    from .data.sft_format import build_sft_dataset

    def build_dataset(tokenizer, split):
        return build_sft_dataset(
            data_args, tokenizer, training_args.max_length, training_args.max_prompt_length, split=split
        )

    return run_training(
        "sft", data_args, training_args, model_args, build_dataset, ChatMusicianSFTTrainer, "formatting the SFT data"
    )


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "sft",
        [DataArguments, ChatMusicianSFTConfig, ModelConfig],
        help="Supervised fine-tuning with TRL's SFTTrainer in the ChatMusician chat format (accelerate-launchable).",
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("sft")
