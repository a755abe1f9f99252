"""Options both training stages add to their configs (``CPTConfig`` and ``ChatMusicianSFTConfig`` mix this in)."""

from __future__ import annotations

from dataclasses import dataclass, field

LOSS_CURVE_FILE = "loss_curve.png"


@dataclass
class EmbeddingTrainingArguments:
    """Options for the input/output embeddings, mixed into the stages' training configs."""

    embedding_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the trained embed_tokens / lm_head copies (their own optimizer group, no weight "
            "decay). Needs `lora_modules_to_save: [embed_tokens, lm_head]` or `trainable_token_indices`. "
            "None: they use `learning_rate`."
        },
    )
    trainable_token_indices: list[int] | None = field(
        default=None,
        metadata={
            "help": "Train only these rows of embed_tokens (PEFT trainable tokens) instead of full copies, e.g. the ids "
            "of added tokens. Mutually exclusive with embed_tokens in `lora_modules_to_save`."
        },
    )
    loss_curve: bool = field(
        default=True,
        metadata={"help": f"Write {LOSS_CURVE_FILE} (train and eval loss) into output_dir at the end."},
    )
