"""The merge itself: every base tensor read once, changed by the adapter, and streamed into planned output shards.

Base shards are read in order and output shards written in the same order, tensor by tensor, so at any moment the
process holds one base tensor, its merged value and the LoRA factors, whatever the shard size.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

from ..errors import MergeError
from ..vocabulary import resize_rows
from .adapter import LoraAdapter
from .safetensors_io import (
    SAFE_INDEX,
    SAFE_SINGLE,
    SafetensorsWriter,
    TensorEntry,
    base_shards,
    read_safetensors_header,
    read_tensor,
)


def parse_size(size: str | int) -> int:
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?I?B)?\s*", size.upper())
    if not match:
        raise MergeError(f"max_shard_size {size!r}: expected a size such as '5GB', '500MB' or a byte count.")
    number, unit = float(match.group(1)), (match.group(2) or "B")
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]  # fmt: skip
    return int(number * scale)



def merged_tensor(key: str, read_base, adapter: LoraAdapter, base_vocab: int, new_vocab: int, dtype: str):
    """The merged value of one base tensor: vocabulary resize, then replacement, LoRA delta and token rows.

    ``read_base()`` loads the base tensor; it is not called when the adapter replaces the tensor whole, which
    spares reading (and holding) a second embedding-sized matrix."""
    import torch

    target_dtype = getattr(torch, dtype)
    if key in adapter.replacements:
        tensor = adapter.replacement(key)
    else:
        tensor = read_base()
        if (
            new_vocab > base_vocab
            and tensor.ndim == 2
            and tensor.shape[0] == base_vocab
            and _is_vocab_tensor(key)
        ):
            tensor = resize_rows(tensor, new_vocab)
    if key in adapter.lora or key in adapter.token_rows:
        work = tensor.float()
        if key in adapter.lora:
            lora_a, lora_b, scale, transpose = adapter.lora[key]
            delta = lora_b @ lora_a
            work += scale * (delta.T if transpose else delta)
        if key in adapter.token_rows:
            indices, rows = adapter.token_rows[key]
            work.index_copy_(0, indices, rows)
        tensor = work
    return tensor.to(target_dtype).contiguous()


def _is_vocab_tensor(key: str) -> bool:
    return key.endswith(("embed_tokens.weight", "lm_head.weight", "wte.weight", "embed_out.weight"))



def plan_shards(entries: list[TensorEntry], out_sizes: dict[str, int], limit: int) -> list[list[str]]:
    """Greedy packing in checkpoint order; a tensor larger than the limit gets a shard of its own."""
    shards: list[list[str]] = [[]]
    size = 0
    for entry in entries:
        nbytes = out_sizes[entry.key]
        if shards[-1] and size + nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append(entry.key)
        size += nbytes
    return shards


def merge_shards(
    base_dir: Path, adapter: LoraAdapter, out_dir: Path, max_shard_size: str | int = "5GB"
) -> dict:
    """Write the merged weights of ``base_dir`` + ``adapter`` into ``out_dir`` as safetensors shards and index.

    Returns the index (``{"metadata": {"total_size": ...}, "weight_map": {...}}``)."""
    from tqdm.auto import tqdm

    config = json.loads((base_dir / "config.json").read_text())
    base_vocab = int(config.get("vocab_size") or 0)
    new_vocab = max(base_vocab, adapter.vocab_size or 0)
    entries = [entry for shard in base_shards(base_dir) for entry in read_safetensors_header(shard)]
    known = {entry.key for entry in entries}
    missing = [k for k in (*adapter.lora, *adapter.replacements, *adapter.token_rows) if k not in known]
    if missing:
        raise MergeError(
            f"the adapter changes tensors the base checkpoint does not have: {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}. Was it trained on this base model?"
        )

    def out_shape(entry: TensorEntry) -> list[int]:
        grows = new_vocab > base_vocab and entry.shape[:1] == [base_vocab] and _is_vocab_tensor(entry.key)
        return [new_vocab, *entry.shape[1:]] if grows else list(entry.shape)

    layout = {e.key: (e.key, e.dtype, out_shape(e)) for e in entries}
    out_sizes = {e.key: e.nbytes * math.prod(out_shape(e)) // max(math.prod(e.shape), 1) for e in entries}
    plan = plan_shards(entries, out_sizes, parse_size(max_shard_size))
    names = (
        [SAFE_SINGLE]
        if len(plan) == 1
        else [f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors" for i in range(len(plan))]
    )
    shard_of = {key: i for i, keys in enumerate(plan) for key in keys}

    # Base shards are read in order and output shards written in the same order, tensor by tensor: at any moment
    # the process holds one base tensor, its merged value and the LoRA factors, whatever the shard size.
    writer, current = None, -1
    progress = tqdm(total=len(entries), desc="Merging", unit="tensor", disable=None)
    for shard_file in dict.fromkeys(e.file for e in entries):
        with open(shard_file, "rb") as handle:
            for entry in (e for e in entries if e.file == shard_file):
                if shard_of[entry.key] != current:
                    if writer is not None:
                        writer.close()
                    current = shard_of[entry.key]
                    writer = SafetensorsWriter(out_dir / names[current], [layout[k] for k in plan[current]])
                read_base = functools.partial(read_tensor, handle, entry)
                merged = merged_tensor(entry.key, read_base, adapter, base_vocab, new_vocab, entry.dtype)
                # the writer checks the planned shape, which also catches an adapter copy of the wrong size
                writer.write(entry.key, merged)
                del merged
                progress.update()
    writer.close()
    progress.close()

    weight_map = {key: names[shard_of[key]] for key in sorted(shard_of)}
    total_size = sum(out_sizes.values())
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    if len(names) > 1:
        (out_dir / SAFE_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    config["vocab_size"] = new_vocab
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return index

