"""Non-trivial LoRA adapters and multi-shard base models made directly with PEFT, for merge tests.

A freshly initialised LoRA has ``B = 0`` and untouched ``modules_to_save`` copies, so merging it changes nothing and
proves nothing. These helpers perturb every trained tensor with seeded noise so that each LoRA target, each saved
module and each trained token row moves the logits.
"""

from __future__ import annotations

from pathlib import Path

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def save_sharded_copy(
    model_dir: str | Path, out_dir: str | Path, max_shard_size: str = "1MB", dtype=None
) -> Path:
    """Re-save a model folder (weights, tokenizer) with small shards so a merge has several shards to walk."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    model.save_pretrained(str(out_dir), max_shard_size=max_shard_size)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out_dir))
    return out_dir


def make_lora_adapter(
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    trainable_tokens: bool = False,
    added_tokens: tuple[str, ...] = (),
    r: int = 8,
    lora_alpha: int = 16,
    noise: float = 0.05,
    seed: int = 0,
) -> Path:
    """Save a perturbed LoRA adapter over all projections of ``base_dir``.

    By default embeddings and lm_head are trained copies (``modules_to_save``); with ``trainable_tokens`` only a few
    embedding rows are trained (``trainable_token_indices``). ``added_tokens`` grows the vocabulary first, as a fine-
    tune that adds a chat or pad token does, and saves the grown tokenizer with the adapter.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    if added_tokens:
        tokenizer.add_tokens(list(added_tokens))
        base.resize_token_embeddings(len(tokenizer))
    extra = dict(modules_to_save=["embed_tokens", "lm_head"])
    if trainable_tokens:
        rows = [5, 6, 7] + list(range(len(tokenizer) - len(added_tokens), len(tokenizer)))
        extra = dict(trainable_token_indices={"embed_tokens": rows})
    config = LoraConfig(
        r=r, lora_alpha=lora_alpha, target_modules=LORA_TARGETS, task_type="CAUSAL_LM", **extra
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * noise)
    model.save_pretrained(str(out_dir))
    if added_tokens:
        tokenizer.save_pretrained(str(out_dir))
    return out_dir
