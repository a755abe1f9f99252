"""Safetensors without memory maps: the merge reads exactly the tensors it works on, and writes shards tensor by tensor.

A memory-mapped read would count the whole file against the process once touched; plain reads into buffers the
process owns keep its peak at one tensor. Headers are checked against the file size, so a truncated or corrupted
file is reported by name instead of failing inside torch.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import MergeError

SAFE_INDEX = "model.safetensors.index.json"
SAFE_SINGLE = "model.safetensors"
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
_DTYPE_CODES = {name: code for code, name in _SAFETENSORS_DTYPES.items()}


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


def iter_output_tensors(folder: Path) -> Iterator[tuple[str, object]]:
    """Every tensor of a saved model folder (single file or sharded), for comparisons in tests and benchmarks."""
    from safetensors.torch import load_file

    for shard in base_shards(Path(folder)):
        yield from load_file(str(shard)).items()

