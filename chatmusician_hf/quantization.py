"""8-bit and 4-bit base weights (TRL's ``load_in_8bit`` / ``load_in_4bit``): honoured through bitsandbytes, or refused
before anything loads.

bitsandbytes quantizes on CUDA GPUs; where it is missing, or no GPU is visible, a recipe asking for it fails in a
second with what is missing instead of training in full precision without saying so. Only LoRA trains on top of
quantized weights, so ``use_peft`` must be on; the ``bnb_4bit_*`` options mean nothing without ``load_in_4bit``
and are refused when set alone.
"""

from __future__ import annotations

import importlib.util

from .errors import ModelLoadError, RecipeError
from .model_loader import resolve_dtype

# TRL ModelConfig fields that only shape 4-bit quantization, with their defaults.
FOUR_BIT_OPTIONS = {"bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": False, "bnb_4bit_quant_storage": None}


def missing_for_bitsandbytes(use_cpu: bool = False) -> list[str]:
    """What this process lacks to load bitsandbytes-quantized weights (empty when nothing)."""
    import torch

    missing = []
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes is not installed (pip install 'chatmusician-hf[gpu]')")
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU is visible (bitsandbytes quantizes on CUDA GPUs)")
    elif use_cpu:
        missing.append("use_cpu is true")
    return missing


def quantization_config(model_args, use_cpu: bool = False):
    """The ``BitsAndBytesConfig`` a recipe asks for (None for full-precision weights), or a refusal naming what is
    missing. Call it before loading weights."""
    requested = [name for name in ("load_in_4bit", "load_in_8bit") if getattr(model_args, name, False)]
    stray = [k for k, default in FOUR_BIT_OPTIONS.items() if getattr(model_args, k, default) != default]
    if stray and requested != ["load_in_4bit"]:
        raise RecipeError(f"{', '.join(stray)} only apply with load_in_4bit: true; set it or remove them.")
    if not requested:
        return None
    option = requested[0]
    if not model_args.use_peft:
        raise RecipeError(f"{option}: quantized base weights are frozen, so only an adapter can train; set use_peft: true.")
    missing = missing_for_bitsandbytes(use_cpu)
    if missing:
        raise ModelLoadError(
            f"{option} needs bitsandbytes on a CUDA GPU, but here {' and '.join(missing)}. Remove {option} to "
            "load the base in full precision."
        )
    from transformers import BitsAndBytesConfig

    if option == "load_in_8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=resolve_dtype(model_args.dtype, "cuda"),
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_quant_storage=model_args.bnb_4bit_quant_storage,
    )
