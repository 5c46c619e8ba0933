"""The Core AI recipe for one component (`convert --format coreai`): the same export module the
Core ML path traces -> torch.export -> coreai-torch -> coreai-opt palettization -> `.aimodel`.

Precision follows Apple's diffusion recipes (weights and compute in float16), while the asset's
inputs and outputs stay those pipeline.json declares (float32, token ids as float32): CoreAIExport
casts float inputs to float16 inside the program and the outputs back to float32. Token ids are
never cast (ids above 2048 are not exact in float16). The export is generic over the component's
declared inputs (ComponentSpec.inputs), so a UNet with an extra input needs nothing here.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..contracts.pipeline_json import Compression
from ..coreai.runtime import ASSET_SUFFIX
from ..coreai.tools import kmeans_build_tools, require_coreai
from ..coreml.weights import GROUP_SIZE
from ..digests import dir_size, tree_sha256
from ..memory import release_freed_memory
from .components import ComponentSpec
from .options import ConvertOptions

COREAI_FILE_NAMES = {"text_encoder": "TextEncoder.aimodel", "unet": "Unet.aimodel", "decoder": "VAEDecoder.aimodel",
                     "encoder": "VAEEncoder.aimodel"}
COREAI_DEPLOYMENT_TARGET = "iOS27"  # Core AI assets run on iOS / iPadOS / macOS 27 and later
UNCAST_INPUTS = ("input_ids",)  # token ids carried as float32: exact there, not in float16
UNPALETTIZED_OPS = ("coreai.gather_nd",)  # the token embedding lookup
GRANULARITY = "per_grouped_channel"  # one look-up table per GROUP_SIZE output channels, as the Core ML iOS 18 path


class CoreAIExport(nn.Module):
    """A component's export module in `dtype`, taking and returning float32 tensors."""

    def __init__(self, module: nn.Module, input_names: tuple[str, ...], dtype: torch.dtype = torch.float16):
        super().__init__()
        self.module = module.to(dtype)
        self.dtype = dtype
        self.cast = tuple(name not in UNCAST_INPUTS for name in input_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args = [x.to(self.dtype) if cast and x.is_floating_point() else x for x, cast in zip(inputs, self.cast)]
        out = self.module(*args)
        return tuple(o.float() for o in (out if isinstance(out, tuple) else (out,)))


def to_coreai(spec: ComponentSpec):
    """The component as a Core AI program (coreai.authoring.AIProgram), float16 inside."""
    coreai_torch = require_coreai("coreai_torch", "convert --format coreai")
    names = tuple(t.name for t in spec.inputs)
    # a float16 copy: the caller's module (e.g. a loaded Pipeline's) keeps its float32 weights
    wrapper = CoreAIExport(copy.deepcopy(spec.module), names).eval()
    with torch.no_grad():
        exported = torch.export.export(wrapper, args=spec.example_inputs())
        exported = exported.run_decompositions(coreai_torch.get_decomp_table())
    del wrapper
    converter = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.RELEASE)  # no stack traces in the asset
    converter.add_exported_program(exported, input_names=list(names), output_names=list(spec.outputs))
    with contextlib.redirect_stdout(sys.stderr):  # its progress line; stdout is for --json
        program = converter.to_coreai()
    del exported, converter
    release_freed_memory()
    return program


def palettize(program, bits: int):
    """coreai-opt's k-means palettization of the program's weights at `bits` (float16 look-up
    tables, one per GROUP_SIZE output channels; weights of 1024 elements or fewer, and those whose
    channels do not split into groups, stay float16).

    The token embedding (a gather, read one row at a time) stays float16, as on the Core ML path
    (convert/compress.py): coreai-opt 0.4.0 has no per-op filter, so its list of weight-consuming
    ops is narrowed to exclude gathers for this call. Palettizing it cost minutes of k-means on
    49408 rows for a few percent of the asset."""
    passes = require_coreai("coreai_opt.coreai_utils", "convert --format coreai --palettize")
    pass_module = require_coreai("coreai_opt.coreai_utils.passes.weight_palettization", "convert --format coreai --palettize")
    kmeans_build_tools()
    ops = getattr(pass_module, "_OPS_WEIGHT_NEED_COMPRESSION", None)
    if ops is None:
        raise RuntimeError("coreai-opt's palettization pass changed (no _OPS_WEIGHT_NEED_COMPRESSION); pin coreai-opt==0.4.0")
    pass_module._OPS_WEIGHT_NEED_COMPRESSION = frozenset(op for op in ops if op not in UNPALETTIZED_OPS)
    try:
        return passes.palettize_weights(program, None, n_bits=bits, granularity=passes.CompressionGranularity.PER_GROUPED_CHANNEL,
                                        group_size=GROUP_SIZE, num_kmeans_workers=1,  # its process pool hung after torch had started threads
                                        in_place=True)
    finally:
        pass_module._OPS_WEIGHT_NEED_COMPRESSION = ops


def convert_component_coreai(spec: ComponentSpec, options: ConvertOptions, out_dir: Path):
    """Export, palettize and save one component as `<Name>.aimodel` in out_dir; its ComponentResult."""
    from .recipe import ComponentResult

    start = time.perf_counter()
    program = to_coreai(spec)
    spec.module = None  # the float32 module is no longer needed
    compression = options.compression_for(spec.key, spec.compress)
    summary = Compression("none")
    if compression.mode == "palettize":
        program = palettize(program, int(compression.bits))
        summary = Compression("palettize", compression.bits, "kmeans", GRANULARITY)
    authoring = require_coreai("coreai.runtime")
    metadata = authoring.AIModelAssetMetadata()
    metadata.author = "snapfusion-coreml"
    metadata.model_description = f"{spec.key} of a snapfusion-coreml pipeline ({__version__})"
    metadata.set_custom("snapfusion.component", spec.key)
    metadata.set_custom("snapfusion.compression", summary.mode)
    if spec.attention:
        metadata.set_custom("snapfusion.attention", spec.attention)
    file = COREAI_FILE_NAMES[spec.key]
    asset = program.save_asset(out_dir / file, metadata)
    del program
    found = asset.summary(include_statistics=False)
    outputs = [_describe(name, text) for name, text in found.function_outputs("main")]
    release_freed_memory()
    return ComponentResult(spec.key, [file], time.perf_counter() - start, dir_size(out_dir / file), summary, outputs,
                           tree_sha256(out_dir / file))


def _describe(name: str, text: str) -> dict:
    """{"name", "shape", "dtype"} from the asset summary's "NDArray (Float32, 1 × 3 × 64 × 64)"."""
    inner = text[text.index("(") + 1: text.rindex(")")]
    dtype, _, dims = inner.partition(",")
    shape = [int(d) for d in dims.replace("×", " ").split()]
    return {"name": name, "shape": shape, "dtype": dtype.strip().lower()}


__all__ = ["COREAI_DEPLOYMENT_TARGET", "COREAI_FILE_NAMES", "ASSET_SUFFIX", "CoreAIExport", "convert_component_coreai",
           "palettize", "to_coreai"]
