"""One uniform recipe for every component: trace -> convert -> compress -> metadata -> save.

With several image sizes (`convert --image-size 512,512x768`), a size-dependent component runs the
same recipe once per size, with fixed shapes each time, and the packages become one multifunction
package (coremltools' save_multifunction), one function per size: the fp16 weights are the same
for every size and palettization is deterministic (kmeans.py: exact k-means from weighted
quantiles), so every function's palettized weights are byte-identical and save_multifunction
stores them once.
"""

from __future__ import annotations

import gc
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..contracts.pipeline_json import Compression
from ..coreml.features import NUMPY_DTYPES, describe_features
from ..coreml.passes import lean_pass_pipelines
from ..coreml.tools import quiet_coremltools
from ..digests import dir_size, tree_sha256
from ..errors import UserError
from ..memory import release_freed_memory
from .components import ComponentSpec
from .compress import MixedRecipe, compress_model, conversion_pass_pipeline
from .options import ConvertOptions
from .package import read_spec, rewrite_package, save_package


@dataclass
class ComponentResult:
    key: str
    files: list[str]
    seconds: float
    size_bytes: int
    compression: Compression
    outputs: list[dict] = field(default_factory=list)
    sha256: str = ""


def to_coreml(spec: ComponentSpec, target: str, pass_pipeline=None, consume: bool = False):
    """Trace the component and convert it to an fp16 ML program for deployment target `target`
    (pass_pipeline: ct.convert's main pipeline, default coremltools' own).

    consume=True releases spec.module once coremltools' torch frontend has read it, collecting
    the reference cycles the module and its trace sit in: from then on the program's fp32
    constants, which share the weights' memory, hold them alone, and the fp16 cast releases each
    as it makes its fp16 copy (coreml/passes.py), so a weight is never held twice over
    (benchmarks/results/convert_memory.md)."""
    ct = quiet_coremltools()
    # 1. frontend: TorchScript -> MIL program, no optimization passes yet
    with torch.no_grad(), warnings.catch_warnings(), lean_pass_pipelines():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(spec.module, spec.example_inputs(), strict=False, check_trace=False)
        program = ct.convert(
            traced,
            inputs=[ct.TensorType(t.name, shape=t.shape, dtype=NUMPY_DTYPES[t.dtype]) for t in spec.inputs],
            outputs=[ct.TensorType(name, dtype=np.float32) for name in spec.outputs],
            convert_to="milinternal",
            compute_precision=ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, target),
            pass_pipeline=ct.PassPipeline.EMPTY,
        )
    del traced
    release_freed_memory()  # the trace's forward-pass activations
    if consume:
        spec.module = None
        gc.collect()  # the module and the trace refer to themselves: without this they outlive the conversion
    # 2. passes (fp16 cast, palettization when asked) and the ML program backend
    with warnings.catch_warnings(), lean_pass_pipelines():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(
            program,
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, target),
            pass_pipeline=pass_pipeline,
            skip_model_load=True,
        )
    _record_torch_source(mlmodel)
    return mlmodel


def _record_torch_source(mlmodel) -> None:
    """Name PyTorch as the source framework, as a one-step ct.convert of the traced module does
    (the second step above would record its MIL program as the source)."""
    from coremltools.converters import _converters_entry

    _converters_entry._record_build_metadata(mlmodel, "pytorch", source_dialect="TorchScript")


def convert_component(spec: ComponentSpec, options: ConvertOptions, out_dir: Path, source: str,
                      mixed_recipe: MixedRecipe | None = None) -> ComponentResult:
    """Run the whole recipe for one component and write its package(s) into out_dir."""
    start = time.perf_counter()
    # 1. trace + convert (one bit width is palettized inside the conversion's pass pipeline); the
    #    PyTorch module is released early unless a mixed recipe still has to run it
    mixed = options.compression_for(spec.key, spec.compress).mode == "mixed"
    mlmodel = to_coreml(spec, options.target, conversion_pass_pipeline(spec, options), consume=not mixed)
    # 2. compress: a mixed recipe (palettize before chunking)
    mlmodel, compression = compress_model(mlmodel, spec, options, mixed_recipe)
    # 3. metadata
    stamp(mlmodel, spec, compression)
    outputs = describe_features(mlmodel.get_spec().description.output)
    # 4. save reproducibly (and chunk)
    path = out_dir / spec.file
    save_package(mlmodel, path)
    files = [spec.file]
    if spec.key == "unet" and options.chunk_unet:
        files = chunk_unet(path, out_dir)
    del mlmodel
    size = sum(dir_size(out_dir / f) for f in files)
    digest = tree_sha256(out_dir / files[0]) if len(files) == 1 else ",".join(tree_sha256(out_dir / f) for f in files)
    return ComponentResult(spec.key, files, time.perf_counter() - start, size, compression, outputs, digest)


def stamp(mlmodel, spec: ComponentSpec, compression: Compression) -> None:
    """The package metadata: nothing that changes between runs of the same conversion (no dates,
    no paths; the source model is named in pipeline.json)."""
    mlmodel.author = "snapfusion-coreml"
    mlmodel.version = __version__
    mlmodel.short_description = f"{spec.key} of a snapfusion-coreml pipeline"
    mlmodel.user_defined_metadata.update({
        "snapfusion.component": spec.key,
        "snapfusion.attention": spec.attention or "", "snapfusion.compression": compression.mode,
    })


def convert_multifunction(specs: list[ComponentSpec], functions: list[str], options: ConvertOptions, out_dir: Path,
                          mixed_recipe: MixedRecipe | None = None) -> ComponentResult:
    """One component at several sizes (specs[i] at the size of function functions[i]) as ONE
    multifunction package (or one per UNet chunk), functions[0] the default. Each size is traced,
    converted and palettized with fixed shapes; a mixed recipe is computed once, on the default
    size, and applied to every size."""
    import shutil

    start = time.perf_counter()
    spec0 = specs[0]
    work = out_dir / f".{spec0.key}.functions"
    recipe = SameRecipe(mixed_recipe) if mixed_recipe is not None else None
    compression = Compression("none")
    outputs: list[dict] = []
    parts: dict[str, list[Path]] = {}  # final file name -> one single-function package per size
    for i, (spec, function) in enumerate(zip(specs, functions)):
        # 1.-2. trace, convert and compress at this size (the module is released after the last)
        mixed = options.compression_for(spec.key, spec.compress).mode == "mixed"
        mlmodel = to_coreml(spec, options.target, conversion_pass_pipeline(spec, options),
                            consume=not mixed and i == len(specs) - 1)
        mlmodel, compression = compress_model(mlmodel, spec, options, recipe)
        stamp(mlmodel, spec, compression)
        if i == 0:
            outputs = describe_features(mlmodel.get_spec().description.output)
        path = work / function / spec.file
        save_package(mlmodel, path)
        del mlmodel
        files = chunk_unet(path, path.parent) if spec.key == "unet" and options.chunk_unet else [spec.file]
        for name in files:
            parts.setdefault(name, []).append(path.parent / name)
    # 3. one multifunction package per file, with the default size's metadata (save_multifunction
    #    writes none), written reproducibly (package.py)
    for name, packages in parts.items():
        save_functions(packages, functions, work / "multifunction" / name)
        metadata = read_spec(packages[0]).description.metadata
        rewrite_package(work / "multifunction" / name, out_dir / name,
                        edit=lambda model_spec, m=metadata: model_spec.description.metadata.CopyFrom(m))
    shutil.rmtree(work)
    files = list(parts)
    size = sum(dir_size(out_dir / f) for f in files)
    digest = ",".join(tree_sha256(out_dir / f) for f in files)
    return ComponentResult(spec0.key, files, time.perf_counter() - start, size, compression, outputs, digest)


def save_functions(packages: list[Path], functions: list[str], dest: Path) -> None:
    """coremltools' save_multifunction: packages[i]'s `main` as function functions[i], functions[0]
    the default; constants equal across functions are stored once (its const deduplication)."""
    ct = quiet_coremltools()
    descriptor = ct.utils.MultiFunctionDescriptor()
    for package, function in zip(packages, functions):
        descriptor.add_function(str(package), "main", function)
    descriptor.default_function_name = functions[0]
    # its passes are all skipped (skip_all_passes), but coremltools still validates the merged
    # program after each of them: ~100 whole-program walks, most of a merge's time
    with warnings.catch_warnings(), lean_pass_pipelines():
        warnings.simplefilter("ignore")
        ct.utils.save_multifunction(descriptor, str(dest))


class SameRecipe:
    """A mixed-bit recipe computed on the first size and reused for the others: the same const op
    gets the same bits in every function, so the palettized weights stay identical."""

    def __init__(self, compute: MixedRecipe):
        self.compute, self.recipe = compute, None

    def __call__(self, mlmodel, spec: ComponentSpec, target_bits: float, method: str, grouped: bool):
        from ..coreml.weights import palettizable_weights

        if self.recipe is None:
            self.recipe = self.compute(mlmodel, spec, target_bits, method, grouped)
            return self.recipe
        names = set(palettizable_weights(mlmodel))
        if set(self.recipe.bits) - names:
            raise UserError(f"the {spec.key} programs of two image sizes name their weights differently: "
                            "convert each size on its own, or palettize with one bit width")
        return self.recipe


def _boundary_in_program_order(block, op_idx: int) -> list:
    """The tensors crossing a bisection after operation op_idx, in program order (producing op,
    then output). coremltools' own `_get_first_chunk_outputs` collects them in a set of Var objects
    (hashed by address), so chunk 1's outputs, chunk 2's inputs and the casts added for them came
    in a different order on every run and the chunks were not byte-reproducible."""
    found, seen = [], set()
    for op in block.operations[: op_idx + 1]:
        if op.op_type.startswith("const"):
            continue
        for var in op.outputs:
            if var.val is None and id(var) not in seen and any(
                    block.operations.index(child) > op_idx for child in var.child_ops):
                seen.add(id(var))
                found.append(var)
    return found


def chunk_unet(path: Path, out_dir: Path) -> list[str]:
    """Split Unet.mlpackage into UnetChunk1/2.mlpackage of about equal size."""
    from .components import CHUNK_NAMES

    ct = quiet_coremltools()
    work = out_dir / ".chunks"
    utils = ct.models.utils
    collect = utils._get_first_chunk_outputs
    utils._get_first_chunk_outputs = _boundary_in_program_order  # deterministic chunks (see there)
    try:
        utils.bisect_model(str(path), str(work), check_output_correctness=False)
    finally:
        utils._get_first_chunk_outputs = collect
    stem = path.stem
    for i, name in enumerate(CHUNK_NAMES, start=1):
        produced = work / f"{stem}_chunk{i}.mlpackage"
        if not produced.exists():
            raise UserError(f"chunking {path.name} did not produce {produced.name}")
        rewrite_package(produced, out_dir / name)
    import shutil

    shutil.rmtree(work)
    shutil.rmtree(path)
    return list(CHUNK_NAMES)
