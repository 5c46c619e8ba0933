"""read_safetensors: the tensors safetensors itself reads, each in memory of its own."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from snapfusion_coreml.modeling.safetensors_file import SafetensorsFormatError, read_safetensors


def _every_dtype() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    floats = torch.randn(3, 5, generator=g)
    return {
        "f32": floats, "f16": floats.half(), "bf16": floats.bfloat16(), "f64": floats.double(),
        "i64": torch.arange(-6, 6).reshape(3, 4), "i32": torch.arange(7, dtype=torch.int32),
        "i16": torch.tensor([-300, 7], dtype=torch.int16), "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
        "f8": floats.to(torch.float8_e4m3fn), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
        "conv.weight": torch.randn(8, 4, 3, 3, generator=g),
    }


def test_reads_what_safetensors_writes_and_reads(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(_every_dtype(), str(path), metadata={"format": "pt"})
    ours, theirs = read_safetensors(path), load_file(str(path))
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
        assert torch.equal(ours[name].view(torch.uint8) if tensor.dtype == torch.float8_e4m3fn else ours[name],
                           tensor.view(torch.uint8) if tensor.dtype == torch.float8_e4m3fn else tensor), name


def test_each_tensor_owns_its_memory(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({f"w{i}": torch.full((64, 64), float(i)) for i in range(4)}, str(path))
    tensors = read_safetensors(path)
    for tensor in tensors.values():
        assert tensor.untyped_storage().nbytes() == tensor.nbytes
    pointers = sorted(t.untyped_storage().data_ptr() for t in tensors.values())
    assert len(set(pointers)) == 4


# In a fresh interpreter: a 256 MB file read, then all but one tensor released.
RELEASE = textwrap.dedent("""
    import sys

    import torch
    from snapfusion_coreml.memory import unmap_large_allocations
    from snapfusion_coreml.modeling.safetensors_file import read_safetensors

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    unmap_large_allocations()
    tensors = read_safetensors(sys.argv[1])
    for t in tensors.values():
        t.sum()  # every page read, as a trace reads the weights
    loaded = rss_mb()
    tensors = {"w0": tensors["w0"]}
    print(loaded, rss_mb())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_released_tensor_leaves_the_process(tmp_path):
    """safetensors 0.8's own reader maps the whole file, whose pages stay while any tensor lives;
    here each tensor's memory leaves with it."""
    path = tmp_path / "big.safetensors"
    save_file({f"w{i}": torch.full((4 << 20,), float(i)) for i in range(16)}, str(path))

    out = subprocess.run([sys.executable, "-c", RELEASE, str(path)], capture_output=True, text=True, check=True).stdout
    loaded, after = (float(x) for x in out.split())
    assert loaded - after > 200  # 15 of the 16 tensors (252 MB) left with their last reference


def _write(path, header: bytes, data: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


@pytest.mark.parametrize("header, data, message", [
    (None, b"", "too short"),
    (b"x" * 40, b"", "not JSON"),
    (b"[1, 2]", b"", "not a JSON object"),
    (json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode(), b"\0" * 4, "does not match"),
    (json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode(), b"\0" * 8, "does not match"),
    (json.dumps({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}).encode(), b"\0" * 8, "no valid dtype"),
    (json.dumps({"w": {"dtype": "F32", "shape": [2]}}).encode(), b"\0" * 8, "no valid dtype"),
])
def test_malformed_files_are_refused(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    if header is None:
        path.write_bytes(b"\1\2\3")
    else:
        _write(path, header, data)
    with pytest.raises(SafetensorsFormatError, match=message):
        read_safetensors(path)


def test_a_header_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(SafetensorsFormatError, match="does not fit"):
        read_safetensors(path)
