"""A PEFT LoRA adapter read into the changes it makes to base tensors, with plain JSON and file reads.

Importing PEFT would cost more memory than the LoRA factors of a 1B model, so ``adapter_config.json`` and
``adapter_model.safetensors`` are read directly; the meaning of every key follows PEFT's (``lora_alpha / r`` or
rsLoRA's ``lora_alpha / sqrt(r)`` scaling, ``rank_pattern`` / ``alpha_pattern``, ``fan_in_fan_out``,
``modules_to_save`` copies, trainable token rows).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MergeError
from .safetensors_io import TensorEntry, read_safetensors_header, read_tensor

ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


@dataclass
class LoraAdapter:
    """An adapter read into the changes it makes to base tensors, keyed by the base checkpoint's tensor names.

    LoRA factors and token rows are small and held in float32; full module copies (``modules_to_save``: embeddings
    and lm_head, ~1 GB in fp32 for a 7B model) stay on disk until the merge reaches their tensor."""

    config: dict
    lora: dict[str, tuple] = field(default_factory=dict)  # weight key -> (A, B, scale, transpose)
    replacements: dict[str, TensorEntry] = field(default_factory=dict)  # weight key -> saved full copy
    token_rows: dict[str, tuple] = field(default_factory=dict)  # weight key -> (indices, rows)
    vocab_size: int | None = None  # rows embed/lm_head must have after the merge (None: unchanged)

    def replacement(self, key: str):
        entry = self.replacements[key]
        with open(entry.file, "rb") as handle:
            return read_tensor(handle, entry)


def _pattern_value(patterns: dict | None, module_name: str, default):
    """PEFT's ``rank_pattern`` / ``alpha_pattern`` lookup: a key matches a module name it ends the dotted path of."""
    for pattern, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module_name):
            return value
    return default


def _token_indices(config: dict, module_name: str) -> list[int]:
    spec = config.get("trainable_token_indices")
    if isinstance(spec, dict):
        for name, indices in spec.items():
            if re.match(rf"(.*\.)?{re.escape(name)}$", module_name):
                return list(indices)
        raise MergeError(f"adapter_config.json: no trainable_token_indices entry for module {module_name!r}")
    if not spec:
        raise MergeError(
            f"adapter_config.json: trainable token rows saved for {module_name!r} but no indices given"
        )
    return list(spec)


def load_adapter(adapter_dir: Path) -> LoraAdapter:
    """Read ``adapter_config.json`` and ``adapter_model.safetensors`` into per-tensor changes.

    Plain JSON and file reads: importing PEFT would cost more memory than the LoRA factors of a 1B model."""
    import torch

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise MergeError(f"{adapter_dir}: no adapter_config.json; is this a PEFT adapter folder?")
    config = json.loads(config_path.read_text())
    if config.get("peft_type") != "LORA":
        raise MergeError(
            f"{config_path}: peft_type is {config.get('peft_type')!r}; only LORA adapters can be merged."
        )
    for unsupported in ("use_dora", "lora_bias"):
        if config.get(unsupported):
            raise MergeError(f"{config_path}: {unsupported}=true is not supported by the shard merge.")
    weights_path = adapter_dir / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise MergeError(f"{adapter_dir}: no {ADAPTER_WEIGHTS} (adapters saved as .bin are not supported).")

    adapter = LoraAdapter(config=config)
    pairs: dict[str, dict] = {}
    with open(weights_path, "rb") as handle:
        for entry in read_safetensors_header(weights_path):
            if not entry.key.startswith(PEFT_PREFIX):
                raise MergeError(
                    f"{weights_path}: unexpected tensor {entry.key!r} (no '{PEFT_PREFIX}' prefix)."
                )
            name = entry.key[len(PEFT_PREFIX) :]
            match = re.fullmatch(r"(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.weight)?", name)
            if match:
                module, kind = match.group(1), match.group(2)
                pair = pairs.setdefault(module, {"embedding": "embedding" in kind})
                pair[kind.replace("embedding_", "")] = read_tensor(handle, entry).float()
            elif name.endswith(".token_adapter.trainable_tokens_delta"):
                module = name.removesuffix(".token_adapter.trainable_tokens_delta")
                indices = _token_indices(config, module)
                if len(indices) != entry.shape[0]:
                    raise MergeError(
                        f"{weights_path}: {entry.key} has {entry.shape[0]} rows but the config lists "
                        f"{len(indices)} indices."
                    )
                adapter.token_rows[f"{module}.weight"] = (
                    torch.tensor(indices),
                    read_tensor(handle, entry).float(),
                )
            elif "lora_" in name or "magnitude" in name:
                raise MergeError(f"{weights_path}: unsupported adapter tensor {entry.key!r}.")
            elif ".original_module." not in name:
                # A modules_to_save copy, or the whole (resized) embedding PEFT saves next to trainable tokens when
                # the vocabulary grew: either way the saved tensor replaces the base one. When the vocabulary grew
                # under a modules_to_save copy, PEFT also saves the wrapper's own state: the copy again
                # (".modules_to_save.") and the frozen base it was made from (".original_module.", not needed).
                key = name.replace(".token_adapter.base_layer.", ".").replace(".modules_to_save.", ".")
                adapter.replacements[key] = entry
    for module, pair in pairs.items():
        if "lora_A" not in pair or "lora_B" not in pair:
            raise MergeError(f"{weights_path}: {module} has only one of lora_A / lora_B.")
        rank = pair["lora_A"].shape[0]
        alpha = _pattern_value(config.get("alpha_pattern"), module, config["lora_alpha"])
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        transpose = pair["embedding"] or bool(
            config.get("fan_in_fan_out")
        )  # embeddings store A as (r, vocab)
        adapter.lora[f"{module}.weight"] = (pair["lora_A"], pair["lora_B"], scale, transpose)

    rows = [e.shape[0] for e in adapter.replacements.values() if len(e.shape) == 2]
    rows += [int(idx.max()) + 1 for idx, _ in adapter.token_rows.values() if len(idx)]
    tokenizer_vocab = _tokenizer_length(adapter_dir)
    if tokenizer_vocab:
        rows.append(tokenizer_vocab)
    adapter.vocab_size = max(rows) if rows else None
    return adapter


def _tokenizer_length(folder: Path) -> int | None:
    """Number of tokens of a tokenizer saved in ``folder`` (None when there is none), without building it."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    ids = list(data.get("model", {}).get("vocab", {}).values()) + [
        t["id"] for t in data.get("added_tokens", [])
    ]
    return max(ids) + 1 if ids else None

