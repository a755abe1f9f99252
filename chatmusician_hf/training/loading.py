"""Tokenizer and model for training, through the one loader (:mod:`chatmusician_hf.model_loader`), and the LoRA set-up.

The tokenizer comes first and alone, so the stage can build its data (and fail on a bad dataset) before any weights
load. It gains ``<pad>`` when it has none (LLaMA-2 has none), and the model's embeddings then grow by the same rule
every later load of the adapter uses. ``model_name_or_path`` may be an adapter folder (a CPT output): its base is
loaded and the adapter merged in memory, so SFT continues from the continued-pretrained weights.
"""

from __future__ import annotations

from ..model_loader import load_model, load_tokenizer


def load_tokenizer_for_training(model_args):
    """The tokenizer the stage trains with: the model's (or the adapter folder's), a pad token, the chat template."""
    return load_tokenizer(model_args.model_name_or_path, revision=model_args.model_revision, pad="add")


def load_model_for_training(model_args, training_args, tokenizer, quantization=None):
    """The base model (adapter merged in) sized for ``tokenizer``, wrapped in a fresh LoRA adapter when the recipe
    uses PEFT. ``quantization`` is a ``BitsAndBytesConfig`` from :func:`chatmusician_hf.quantization.quantization_config`."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    # The adapter's random init must repeat: two runs of one recipe give the same weights.
    set_seed(training_args.seed)
    model = load_model(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        device=None,  # the trainer places the weights
        pad="add",
        tokenizer=tokenizer,
        quantization=quantization,
        attn_implementation=model_args.attn_implementation,
        merge_adapter=True,
    ).model
    # Training needs no KV cache, and with one transformers ignores per-document position_ids: packed documents
    # would attend to each other.
    model.config.use_cache = False
    if quantization is not None:
        model = prepare_model_for_kbit_training(model, training_args.gradient_checkpointing)
    if model_args.use_peft:
        model = get_peft_model(model, build_lora_config(model_args, training_args))
        upcast_trainable_parameters(model)
        model.print_trainable_parameters()
    return model


def build_lora_config(model_args, training_args):
    from peft import LoraConfig

    kwargs = {}
    if training_args.trainable_token_indices:
        kwargs["trainable_token_indices"] = {"embed_tokens": list(training_args.trainable_token_indices)}
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        bias="none",
        **kwargs,
    )


def upcast_trainable_parameters(model) -> None:
    """Keep trainable weights (LoRA, embedding copies) in fp32 when the frozen base is loaded in bf16/fp16.

    The frozen base in half precision halves its memory and needs no per-step casts under autocast; the optimizer
    must still update fp32 master weights, or small updates vanish in bf16 rounding.
    """
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
