"""Everything about a training recipe that can be refused before any weights load.

Each recipe option is honoured or refused: LoRA targets must name modules the model has (checked on a weightless
copy of its module tree), the embedding options must fit together, TRL ``ModelConfig`` options this project does
not carry through (LoRA on raw parameters, a task other than causal LM) are refused. What depends on the machine is
checked next to it: 8/4-bit loading by :mod:`chatmusician_hf.quantization`, the resumption checkpoint by
:mod:`chatmusician_hf.training.resume`.
"""

from __future__ import annotations

from ..configs import closest_key
from ..errors import RecipeError
from ..pretrained import resolve_sources


def check_training_recipe(model_args, training_args) -> None:
    """Refuse a recipe whose options cannot work together or with its model (on any machine)."""
    if getattr(model_args, "lora_task_type", "CAUSAL_LM") != "CAUSAL_LM":
        raise RecipeError(f"lora_task_type: {model_args.lora_task_type}; the CPT and SFT stages train CAUSAL_LM only.")
    if getattr(model_args, "lora_target_parameters", None):
        raise RecipeError(
            "lora_target_parameters (LoRA on raw parameters, e.g. MoE experts) is not supported: the merge reads "
            "LoRA on modules only. Name the modules in lora_target_modules."
        )
    check_peft_recipe(model_args, training_args)


def _meta_model(model_name_or_path: str, revision: str | None = None):
    """The model's module tree without its weights: enough to check LoRA targets before loading anything.

    Built with the class constructor on the meta device rather than ``from_config``, which under ZeRO-3 would try
    to partition the (absent) weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolve_sources(model_name_or_path, revision=revision).base)
    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    with torch.device("meta"):
        return model_class(config)


def check_peft_recipe(model_args, training_args) -> None:
    """Fail before any weights load when the LoRA / embedding options cannot work together or with the model."""
    modules_to_save = list(model_args.lora_modules_to_save or [])
    trains_embeddings = bool(modules_to_save) or bool(training_args.trainable_token_indices)
    if training_args.embedding_learning_rate is not None and model_args.use_peft and not trains_embeddings:
        raise RecipeError(
            "embedding_learning_rate is set but no embeddings are trained: add "
            "`lora_modules_to_save: [embed_tokens, lm_head]` (or `trainable_token_indices`), or remove "
            "embedding_learning_rate."
        )
    if training_args.trainable_token_indices and "embed_tokens" in modules_to_save:
        raise RecipeError(
            "trainable_token_indices and embed_tokens in lora_modules_to_save exclude each other."
        )
    if not model_args.use_peft:
        return
    model = _meta_model(model_args.model_name_or_path, model_args.model_revision)
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    targets = model_args.lora_target_modules
    if isinstance(targets, str):
        targets = [] if targets == "all-linear" else [targets]
    for kind, names in (("lora_target_modules", targets or []), ("lora_modules_to_save", modules_to_save)):
        missing = [name for name in names if name not in leaf_names]
        if missing:
            hints = [
                f"'{m}'"
                + (f" (did you mean '{closest_key(m, leaf_names)}'?)" if closest_key(m, leaf_names) else "")
                for m in missing
            ]
            raise RecipeError(
                f"{kind}: {', '.join(hints)} not found in {model_args.model_name_or_path} "
                f"({type(model).__name__}); its module names include {sorted(leaf_names)[:20]}."
            )
