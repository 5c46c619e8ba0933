"""Reading a .safetensors file into tensors that each own their memory.

safetensors' own `load_file` (0.8) serves every tensor from one memory map of the whole file:
no copy, but no tensor can give its pages back either. A conversion releases each weight as soon
as its fp16 copy exists (coreml/passes.py), and with one shared map the UNet's 3.2 GiB of fp32
pages stayed resident until the last weight went: that was the conversion's memory peak
(benchmarks/results/convert_memory.md). Here each tensor is read into its own allocation (one
mapping per large tensor, see memory.unmap_large_allocations), so it leaves with its last
reference.

The format: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype,
shape and [begin, end) byte offsets into the data that follows (`__metadata__` holds strings).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
MAX_HEADER = 100 * 2**20  # safetensors' own limit


class SafetensorsFormatError(ValueError):
    """The file is not a complete safetensors file (the message says what is wrong)."""


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the file, each in memory of its own, in file order."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        entries, data_start = _header(f, size)
        tensors = {}
        for name, (dtype, shape, begin, end) in entries.items():
            tensor = torch.empty(shape, dtype=dtype)
            if end > begin:
                f.seek(data_start + begin)
                if f.readinto(tensor.reshape(-1).view(torch.uint8).numpy()) != end - begin:
                    raise SafetensorsFormatError(f"tensor {name!r} ends past the end of the file")
            tensors[name] = tensor
    return tensors


def _header(f, size: int) -> tuple[dict[str, tuple], int]:
    """({name: (dtype, shape, begin, end)} in file order, offset of the data section)."""
    if size < 8:
        raise SafetensorsFormatError(f"{size} bytes is too short for a header")
    (length,) = struct.unpack("<Q", f.read(8))
    if length > min(MAX_HEADER, size - 8):
        raise SafetensorsFormatError(f"header length {length} does not fit a {size}-byte file")
    try:
        header = json.loads(f.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsFormatError(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsFormatError("the header is not a JSON object")
    data_start, entries = 8 + length, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(name, info, size - data_start)
    return dict(sorted(entries.items(), key=lambda item: item[1][2])), data_start


def _entry(name: str, info, data_size: int) -> tuple:
    try:
        dtype, shape, (begin, end) = DTYPES[info["dtype"]], [int(n) for n in info["shape"]], info["data_offsets"]
        begin, end = int(begin), int(end)
    except (KeyError, TypeError, ValueError):
        raise SafetensorsFormatError(f"tensor {name!r} has no valid dtype, shape and data_offsets: {info}") from None
    expected = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if min(shape, default=0) < 0 or not 0 <= begin <= end <= data_size or end - begin != expected:
        raise SafetensorsFormatError(f"tensor {name!r}: {info['dtype']} {shape} does not match data_offsets "
                                     f"[{begin}, {end}) in {data_size} data bytes")
    return dtype, shape, begin, end
