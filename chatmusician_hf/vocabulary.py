"""The one rule for growing a vocabulary: new rows of embed_tokens and lm_head start at the mean of the old rows.

The mean is a neutral point that leaves the first training steps' loss unchanged, and it is deterministic, so every
place that grows a matrix agrees on rows nobody trained: training when it adds ``<pad>``, every later load of the
adapter (:mod:`chatmusician_hf.model_loader`), the merge's shard writer and its PEFT reference. transformers' own
``mean_resizing`` samples the new rows at random instead, which no two loads would repeat.
"""

from __future__ import annotations


def resize_rows(tensor, rows: int):
    """``tensor`` (vocabulary x width) grown to ``rows`` rows, the new ones at the mean row (computed in float32)."""
    import torch

    extra = tensor.float().mean(dim=0, keepdim=True).expand(rows - tensor.shape[0], -1).to(tensor.dtype)
    return torch.cat([tensor, extra], dim=0)


def grow_vocabulary(model, rows: int) -> bool:
    """Grow a loaded model's input and output embeddings to ``rows`` exactly as :func:`resize_rows` does; never
    shrinks. Returns whether it grew."""
    import contextlib

    import torch
    from transformers.integrations import is_deepspeed_zero3_enabled

    weight = model.get_input_embeddings().weight
    # Under ZeRO-3 a rank holds an empty shard; DeepSpeed keeps the full shape beside it.
    old = getattr(weight, "ds_shape", weight.shape)[0]
    if rows <= old:
        return False
    model.resize_token_embeddings(rows, mean_resizing=False)
    modules = [m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None]
    gathered = contextlib.nullcontext()
    if is_deepspeed_zero3_enabled():  # under ZeRO-3 each rank holds a shard; rank 0 writes the whole rows
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters([m.weight for m in modules], modifier_rank=0)
    with gathered, torch.no_grad():
        for module in modules:
            weight = module.weight
            weight[old:] = weight[:old].float().mean(dim=0).to(weight.dtype)
    return True
