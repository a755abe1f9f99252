"""``chatmusician-hf merge``: fold a LoRA adapter into its base model, one shard at a time, and prove it.

The merge never holds the base model, the adapter and the merged model at once. It reads the base's safetensors
shards one after another, tensor by tensor (plain file reads, no memory map, so the process owns only what it is
working on), applies ``W += scale * B @ A`` in float32 for every LoRA target, substitutes the ``modules_to_save``
copies and the trained token rows, casts back to the base's dtype and streams the result into output shards of at
most ``--max_shard_size`` whose headers were laid out in advance. Peak memory is one tensor (the largest is the
embedding matrix) plus the LoRA factors, whatever the shard size: for LLaMA-2-7B about 2 GB above the Python
baseline, where PEFT's ``merge_and_unload`` path holds the whole model (~13.5 GB in fp16) plus the adapter.

Everything is written to a temporary folder beside ``--output_dir``. Before it is renamed into place the merged
model is checked against PEFT's own reading of the adapter: logits of base+adapter (``PeftModel``) and of the merged
model on music and text probe prompts must agree within a tolerance suited to the dtype, or nothing is published and
the measured difference is reported. ``--verify`` chooses how much of the model that check loads:

* ``full``: both whole models, one after the other (never at once): about one model in memory. For a 7B fp16
  model that is ~14 GB, which fits a 24 GB machine only when nothing else runs beside it.
* ``sample``: the same comparison on the first ``--verify_layers`` decoder layers plus embeddings, norm and
  lm_head (transformers loads only those tensors). Every decoder layer is merged by the same code path, so the
  sampled layers check the LoRA scaling, the target naming and the vocabulary handling at a fraction of the memory.
* ``none``: skip the check (for merges already verified once, e.g. re-sharding).
"""

from __future__ import annotations

import functools
import gc
import json
import math
import re
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .configs import make_stage_parser
from .errors import MergeError, VerificationError
from .pretrained import resolve_pretrained

ADAPTER_WEIGHTS = "adapter_model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
SAFE_SINGLE = "model.safetensors"
PEFT_PREFIX = "base_model.model."
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "added_tokens.json", "chat_template.jinja")  # fmt: skip
DOWNLOAD_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.jinja",
    "tokenizer.model",
    "*.md",
    "*.png",
    "*.yaml",
    "*.txt",
]
# Files a training run leaves in the adapter folder that describe the model and belong next to it on the Hub.
CARD_ASSETS = ("eval_results.json", "loss_curve.png", "training_info.json", "recipe.yaml")

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

_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
_DTYPE_CODES = {name: code for code, name in _SAFETENSORS_DTYPES.items()}


@dataclass
class MergeArguments:
    base: str = field(
        default=None, metadata={"help": "Base model: Hub ID (e.g. meta-llama/Llama-2-7b-hf) or local folder."}
    )
    adapter: str = field(
        default=None, metadata={"help": "LoRA adapter folder or Hub ID (PeftModel.save_pretrained output)."}
    )
    output_dir: str = field(
        default=None,
        metadata={"help": "Folder for the merged model; written only after verification passes."},
    )
    max_shard_size: str = field(
        default="5GB", metadata={"help": "Largest output safetensors shard, e.g. '5GB', '500MB'."}
    )
    verify: str = field(
        default="full",
        metadata={
            "help": "Logit check before publishing: 'full' loads base+adapter then the merged model (one at a time, ~one "
            "model of memory); 'sample' checks only the first --verify_layers layers (use for 7B on 24 GB); 'none' skips it.",
            "choices": ["full", "sample", "none"],
        },
    )
    verify_layers: int = field(default=2, metadata={"help": "Decoder layers loaded by --verify sample."})
    tolerance: float = field(
        default=None,
        metadata={"help": "Largest allowed |logit difference| relative to the largest |logit|. Default by dtype: "
                  + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_RELATIVE_TOLERANCE.items()) + "."},
    )  # fmt: skip
    overwrite: bool = field(
        default=False, metadata={"help": "Replace --output_dir if it already holds files."}
    )
    base_revision: str = field(default=None, metadata={"help": "Branch, tag or commit of a Hub base model."})
    adapter_revision: str = field(default=None, metadata={"help": "Branch, tag or commit of a Hub adapter."})
    datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Datasets the adapter was trained on, for the model card (default: read from the adapter's card)."
        },
    )
    push_to_hub: bool = field(
        default=False, metadata={"help": "Upload the merged folder in one commit afterwards."}
    )
    hub_model_id: str = field(
        default=None, metadata={"help": "Repo to push to, USER/NAME (needed with --push_to_hub)."}
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the pushed repo as private."})


# ----------------------------------------------------------------------------------------------------------------
# Locating inputs
# ----------------------------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------------------------
# Safetensors without memory maps: the merge owns exactly the tensors it reads
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TensorEntry:
    key: str
    file: Path
    dtype: str  # torch dtype name
    shape: list[int]
    offsets: tuple[int, int]  # byte range within the data section
    data_start: int

    @property
    def nbytes(self) -> int:
        return self.offsets[1] - self.offsets[0]


def read_safetensors_header(path: Path) -> list[TensorEntry]:
    """The tensors of a safetensors file in file order, checked against the file's size (truncation)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                raise ValueError(f"header length {header_len} exceeds the file size")
            header = json.loads(f.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise MergeError(f"{path}: cannot be read as safetensors ({err}).") from err
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise MergeError(f"{path}: tensor {key!r} has unsupported dtype {info['dtype']}")
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        entries.append(
            TensorEntry(key, path, dtype, info["shape"], tuple(info["data_offsets"]), 8 + header_len)
        )
    entries.sort(key=lambda e: e.offsets[0])
    data_size = entries[-1].offsets[1] if entries else 0
    if 8 + header_len + data_size != size:
        raise MergeError(
            f"{path}: cannot be read as safetensors (header describes {data_size} bytes of tensors, "
            f"the file holds {size - 8 - header_len}; truncated or corrupted)."
        )
    return entries


class SafetensorsWriter:
    """Writes a safetensors file tensor by tensor: the header is laid out up front from the planned shapes, so no
    shard is ever assembled in memory."""

    def __init__(self, path: Path, layout: list[tuple[str, str, list[int]]]):
        import torch

        header, offset = {"__metadata__": {"format": "pt"}}, 0
        self.expected = []
        for key, dtype, shape in layout:
            nbytes = math.prod(shape) * torch.empty((), dtype=getattr(torch, dtype)).element_size()
            header[key] = {
                "dtype": _DTYPE_CODES[dtype],
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            self.expected.append((key, dtype, list(shape)))
            offset += nbytes
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the format aligns the data section to 8 bytes
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.handle.write(struct.pack("<Q", len(encoded)) + encoded)
        self.position = 0

    def write(self, key: str, tensor) -> None:
        import torch

        expected_key, dtype, shape = self.expected[self.position]
        if (key, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)) != (
            expected_key,
            dtype,
            shape,
        ):
            raise MergeError(
                f"tensor {key}: merged value is {tuple(tensor.shape)} {tensor.dtype}, the output layout expects "
                f"{tuple(shape)} {dtype} (an adapter copy saved for another vocabulary size?)"
            )
        self.handle.write(tensor.contiguous().view(torch.uint8).numpy().data if tensor.numel() else b"")
        self.position += 1

    def close(self) -> None:
        self.handle.close()
        if self.position != len(self.expected):
            raise MergeError(
                f"internal: {self.handle.name} got {self.position} of {len(self.expected)} tensors"
            )


def read_tensor(handle, entry: TensorEntry):
    """Read one tensor into memory the process owns (``readinto``: no intermediate bytes copy)."""
    import torch

    dtype = getattr(torch, entry.dtype)
    if entry.nbytes == 0:
        return torch.empty(entry.shape, dtype=dtype)
    buffer = bytearray(entry.nbytes)
    handle.seek(entry.data_start + entry.offsets[0])
    if handle.readinto(buffer) != entry.nbytes:
        raise MergeError(f"{entry.file}: tensor {entry.key} is cut short; the file is truncated.")
    return torch.frombuffer(buffer, dtype=dtype).reshape(entry.shape)


def base_shards(base_dir: Path) -> list[Path]:
    """The base's safetensors files in index order."""
    index = base_dir / SAFE_INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [base_dir / name for name in sorted(set(weight_map.values()))]
    if (base_dir / SAFE_SINGLE).is_file():
        return [base_dir / SAFE_SINGLE]
    raise MergeError(f"{base_dir}: no {SAFE_INDEX} or {SAFE_SINGLE}; the merge needs safetensors weights.")


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


# ----------------------------------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------------------------------
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
            else:
                # A modules_to_save copy, or the whole (resized) embedding PEFT saves next to trainable tokens when
                # the vocabulary grew: either way the saved tensor replaces the base one.
                adapter.replacements[name.replace(".token_adapter.base_layer.", ".")] = entry
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


# ----------------------------------------------------------------------------------------------------------------
# The merge itself
# ----------------------------------------------------------------------------------------------------------------
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


def resize_rows(tensor, rows: int):
    """Grow a vocabulary matrix to ``rows``, new rows set to the mean row: deterministic, so the merge and the
    verification's PEFT reference (see :func:`resize_model_vocab`) agree on rows the adapter did not train."""
    import torch

    extra = tensor.float().mean(dim=0, keepdim=True).expand(rows - tensor.shape[0], -1).to(tensor.dtype)
    return torch.cat([tensor, extra], dim=0)


def resize_model_vocab(model, rows: int) -> None:
    """Resize a loaded model's embeddings and lm_head exactly as :func:`resize_rows` does in the shard merge."""
    import torch

    base_rows = model.get_input_embeddings().weight.shape[0]
    if base_rows >= rows:
        return
    model.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        for module in (model.get_input_embeddings(), model.get_output_embeddings()):
            if module is not None:
                weight = module.weight
                weight[base_rows:] = weight[:base_rows].float().mean(dim=0).to(weight.dtype)


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


# ----------------------------------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------------------------------
def probe_token_ids(tokenizer, new_token_ids: list[int]) -> list[list[int]]:
    probes = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in PROBE_PROMPTS]
    if (
        new_token_ids
    ):  # tokens added for the fine-tune (e.g. a pad or chat token) must map to their trained rows
        probes.append(probes[0][:8] + list(new_token_ids) + probes[2][:8])
    return probes


def _logits(model, probes: list[list[int]]):
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0].float() for ids in probes]


def _load_causal_lm(path: Path, dtype, num_layers: int | None):
    from transformers import AutoModelForCausalLM

    overrides = {"num_hidden_layers": num_layers} if num_layers else {}
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **overrides).eval()


def reference_logits(
    base_dir: Path, adapter_dir: Path, probes, dtype, vocab_size: int, num_layers: int | None
):
    """Logits of the base model with the adapter applied by PEFT itself (not merged)."""
    import warnings

    from peft import PeftModel

    model = _load_causal_lm(base_dir, dtype, num_layers)
    resize_model_vocab(model, vocab_size)
    with warnings.catch_warnings():
        # With --verify sample the adapter has weights for layers the truncated model lacks; that is expected.
        warnings.filterwarnings("ignore", message=".*unexpected.*|.*Found missing adapter keys.*")
        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
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
    """Compare PEFT's base+adapter logits with the merged model's; raise :class:`MergeError` when they differ.

    Returns (max |difference|, allowed difference)."""
    import torch
    from transformers import AutoTokenizer

    merged_config = json.loads((Path(merged_dir) / "config.json").read_text())
    dtype_name = merged_config.get("dtype") or merged_config.get("torch_dtype") or "float32"
    dtype = getattr(torch, dtype_name)
    base_vocab = json.loads((Path(base_dir) / "config.json").read_text())["vocab_size"]
    vocab = merged_config["vocab_size"]
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    probes = probe_token_ids(tokenizer, list(range(base_vocab, vocab)))
    num_layers = layers if mode == "sample" else None
    reference = reference_logits(Path(base_dir), Path(adapter_dir), probes, dtype, vocab, num_layers)
    merged_model = _load_causal_lm(Path(merged_dir), dtype, num_layers)
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


# ----------------------------------------------------------------------------------------------------------------
# Companion files: tokenizer, chat template, generation config, model card
# ----------------------------------------------------------------------------------------------------------------
def write_tokenizer_and_generation_config(base_dir: Path, adapter_dir: Path, out_dir: Path) -> None:
    """The adapter's tokenizer when it saved one (it may have added tokens), else the base's; ChatMusician's chat
    template when the tokenizer has none; a generation config with ChatMusician's sampling defaults."""
    from transformers import AutoTokenizer, GenerationConfig

    from .chat_format import CHAT_TEMPLATE, CHATMUSICIAN_GENERATION_DEFAULTS

    source = adapter_dir if any((adapter_dir / name).is_file() for name in TOKENIZER_FILES[:2]) else base_dir
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    try:
        generation = GenerationConfig.from_pretrained(str(base_dir))
    except OSError:
        generation = GenerationConfig()
    generation.update(**CHATMUSICIAN_GENERATION_DEFAULTS)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is not None:
            setattr(generation, name, getattr(tokenizer, name))
    generation.save_pretrained(str(out_dir))


def adapter_datasets(adapter_dir: Path) -> list[str]:
    """The datasets named in the adapter's own model card, if it has one."""
    readme = adapter_dir / "README.md"
    if not readme.is_file():
        return []
    from huggingface_hub import ModelCard

    datasets = ModelCard.load(readme).data.datasets
    return [datasets] if isinstance(datasets, str) else list(datasets or [])


def iter_output_tensors(folder: Path) -> Iterator[tuple[str, object]]:
    """Every tensor of a saved model folder (single file or sharded), for comparisons in tests and benchmarks."""
    from safetensors.torch import load_file

    for shard in base_shards(Path(folder)):
        yield from load_file(str(shard)).items()


def _temporary_sibling(output_dir: Path) -> Path:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.merging-", dir=output_dir.parent))


def _publish(tmp_dir: Path, output_dir: Path) -> None:
    """Move the verified folder into place; an existing output is replaced only after the new one is complete."""
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        output_dir.rename(old)
        tmp_dir.rename(output_dir)
        shutil.rmtree(old)
    else:
        tmp_dir.rename(output_dir)


def main(args: MergeArguments) -> Path:
    for name in ("base", "adapter", "output_dir"):
        if not getattr(args, name):
            raise MergeError(f"--{name} is required.")
    if args.push_to_hub and not args.hub_model_id:
        raise MergeError("--push_to_hub needs --hub_model_id USER/NAME.")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise MergeError(f"{output_dir} already holds files; pass --overwrite to replace it.")
    base_dir = Path(resolve_pretrained(args.base, args.base_revision, DOWNLOAD_PATTERNS, what="base model"))
    adapter_dir = Path(resolve_pretrained(args.adapter, args.adapter_revision, DOWNLOAD_PATTERNS, what="adapter"))
    adapter = load_adapter(adapter_dir)

    tmp_dir = _temporary_sibling(output_dir)
    try:
        index = merge_shards(base_dir, adapter, tmp_dir, args.max_shard_size)
        del adapter
        write_tokenizer_and_generation_config(base_dir, adapter_dir, tmp_dir)
        if args.verify != "none":
            verify_merge(
                base_dir,
                adapter_dir,
                tmp_dir,
                mode=args.verify,
                layers=args.verify_layers,
                tolerance=args.tolerance,
            )
        for name in CARD_ASSETS:
            if (adapter_dir / name).is_file():
                shutil.copy2(adapter_dir / name, tmp_dir / name)
        from .model_card import build_model_card

        build_model_card(
            tmp_dir,
            base_model=args.base,
            relation="merge",
            datasets=args.datasets or adapter_datasets(adapter_dir),
            recipe=tmp_dir / "recipe.yaml" if (tmp_dir / "recipe.yaml").is_file() else None,
            repo_id=args.hub_model_id or f"<user>/{output_dir.name}",
        )
        _publish(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    n_shards = len(set(index["weight_map"].values()))
    print(f"[merge] wrote {output_dir}: {n_shards} shard(s), {index['metadata']['total_size'] / 1e9:.3f} GB")
    if args.push_to_hub:
        from .push import push_folder

        push_folder(output_dir, args.hub_model_id, private=args.hub_private_repo)
    return output_dir


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "merge",
        [MergeArguments],
        help="Merge a LoRA adapter into its base model shard by shard, verify the logits, write sharded safetensors.",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    from .cli import run_command

    sys.exit(run_command("merge", sys.argv[1:], sys.modules[__name__]))
