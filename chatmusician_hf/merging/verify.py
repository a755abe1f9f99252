"""Proof before publishing: the merged model's logits against PEFT's own reading of base + adapter.

Logits of base+adapter (``PeftModel``, unmerged) and of the merged model on music and text probe prompts must agree
within a tolerance suited to the dtype, or nothing is published and the measured difference is reported. Both
models load through :mod:`chatmusician_hf.model_loader`, one after the other (never at once).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

from ..errors import VerificationError
from ..model_loader import load_model, load_tokenizer

# Relative tolerance on logits, per dtype: float32 merges differ from PEFT's unmerged forward only by float
# reassociation; half-precision merges round W + BA to 8 (bf16) or 11 (fp16) mantissa bits once, where PEFT adds the
# delta to activations. Measured on the tiny model (|logits| up to ~3): max |difference| fp32 2e-6, fp16 4e-3,
# bf16 3e-2; the allowance is the factor below times max(1, largest |logit|).
DEFAULT_RELATIVE_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

# Music and plain-text probes, so both the ABC-heavy rows and the English rows of embed/lm_head are exercised.
PROBE_PROMPTS = (
    "Using ABC notation, recreate the given text as a musical score.\nMeter C\nKey D\nNote Length 1/8\nRhythm reel",
    "X:1\nT:The Kesh\nM:6/8\nL:1/8\nK:G\n|:GAG GAB|ABA ABd|edd gdd|edB dBA:|",
    "What is the relative minor key of C major, and how many sharps does E major have?",
)


def probe_token_ids(tokenizer, new_token_ids: list[int]) -> list[list[int]]:
    probes = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in PROBE_PROMPTS]
    if new_token_ids:  # tokens added for the fine-tune (e.g. a pad or chat token) must map to their trained rows
        probes.append(probes[0][:8] + list(new_token_ids) + probes[2][:8])
    return probes


def _logits(model, probes: list[list[int]]):
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0].float() for ids in probes]


def reference_logits(base_dir: Path, adapter_dir: Path, probes, dtype: str, vocab_size: int, num_layers: int | None):
    """Logits of the base model with the adapter applied by PEFT itself (not merged)."""
    import warnings

    with warnings.catch_warnings():
        # With --verify sample the adapter has weights for layers the truncated model lacks; that is expected.
        warnings.filterwarnings("ignore", message=".*unexpected.*|.*Found missing adapter keys.*")
        model = load_model(
            str(base_dir), str(adapter_dir), dtype=dtype, device=None, vocab_size=vocab_size, num_layers=num_layers
        ).model
    logits = _logits(model, probes)
    del model
    gc.collect()  # PEFT's wrappers form reference cycles; free the reference model before loading the merged one
    return logits


def compare_logits(reference, merged, dtype_name: str, tolerance: float | None) -> tuple[float, float, bool]:
    """(max |difference|, allowed difference, passed). Non-finite logits never pass."""
    import torch

    relative = tolerance if tolerance is not None else DEFAULT_RELATIVE_TOLERANCE.get(dtype_name, 5e-2)
    diffs = [(r - m).abs().max().item() for r, m in zip(reference, merged, strict=False)]
    scale = max(max(r.abs().max().item() for r in reference), 1.0)
    max_diff = max(diffs)
    finite = all(torch.isfinite(t).all() for t in (*reference, *merged))
    allowed = relative * scale
    return max_diff, allowed, bool(finite and max_diff <= allowed)


def verify_merge(
    base_dir, adapter_dir, merged_dir, *, mode="full", layers=2, tolerance=None
) -> tuple[float, float]:
    """Compare PEFT's base+adapter logits with the merged model's; raise :class:`VerificationError` when they differ.

    Returns (max |difference|, allowed difference)."""
    merged_config = json.loads((Path(merged_dir) / "config.json").read_text())
    dtype_name = merged_config.get("dtype") or merged_config.get("torch_dtype") or "float32"
    base_vocab = json.loads((Path(base_dir) / "config.json").read_text())["vocab_size"]
    vocab = merged_config["vocab_size"]
    num_layers = layers if mode == "sample" else None
    tokenizer = load_tokenizer(str(merged_dir))
    probes = probe_token_ids(tokenizer, list(range(base_vocab, vocab)))
    reference = reference_logits(Path(base_dir), Path(adapter_dir), probes, dtype_name, vocab, num_layers)
    merged_model = load_model(
        str(merged_dir), dtype=dtype_name, device=None, num_layers=num_layers, tokenizer=tokenizer
    ).model
    merged = _logits(merged_model, probes)
    del merged_model
    max_diff, allowed, passed = compare_logits(reference, merged, dtype_name, tolerance)
    scope = f"first {layers} layers" if mode == "sample" else "full model"
    if not passed:
        raise VerificationError(
            f"verification failed ({scope}, {dtype_name}): max |merged - (base+adapter)| logit difference is "
            f"{max_diff:.6g}, allowed {allowed:.6g}. Nothing was written to the output folder.",
            max_diff,
            allowed,
        )
    print(f"[merge] verified ({scope}, {dtype_name}): max |logit difference| {max_diff:.3g} <= {allowed:.3g}")
    return max_diff, allowed

