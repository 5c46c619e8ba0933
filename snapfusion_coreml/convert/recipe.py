"""One uniform recipe for every component: trace -> convert -> compress -> metadata -> save."""

from __future__ import annotations

import gc
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import UserError
from ..io import dir_size, tree_sha256
from .components import ComponentSpec, describe_features
from .compress import compress_model, conversion_pass_pipeline
from .options import ConvertOptions


@dataclass
class ComponentResult:
    key: str
    files: list[str]
    seconds: float
    size_bytes: int
    compression: dict
    outputs: list[dict] = field(default_factory=list)
    sha256: str = ""


def quiet_coremltools():
    """Import coremltools without its import-time chatter about optional native parts."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="coremltools")
    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct


def to_coreml(spec: ComponentSpec, options: ConvertOptions, pass_pipeline=None):
    """Trace the component and convert it to an fp16 ML program (pass_pipeline: ct.convert's
    main pipeline, default coremltools' own)."""
    ct = quiet_coremltools()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(spec.module, spec.example_inputs(), strict=False, check_trace=False)
        inputs = [ct.TensorType(t.name, shape=t.shape, dtype=np.int32 if t.dtype == "int32" else np.float32)
                  for t in spec.inputs]
        return ct.convert(
            traced,
            inputs=inputs,
            outputs=[ct.TensorType(name, dtype=np.float32) for name in spec.outputs],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, options.target),
            pass_pipeline=pass_pipeline,
            skip_model_load=True,
        )


def convert_component(spec: ComponentSpec, options: ConvertOptions, out_dir: Path, source: str) -> ComponentResult:
    """Run the whole recipe for one component and write its package(s) into out_dir."""
    start = time.perf_counter()
    # 1. trace + convert (one bit width is palettized inside the conversion's pass pipeline)
    mlmodel = to_coreml(spec, options, conversion_pass_pipeline(spec, options))
    # 2. compress: a mixed recipe (palettize before chunking)
    mlmodel, compression = compress_model(mlmodel, spec, options)
    # 3. metadata
    mlmodel.author = "snapfusion-coreml"
    mlmodel.version = __version__
    mlmodel.short_description = f"{spec.key} of {source}"
    mlmodel.user_defined_metadata.update({
        "snapfusion.component": spec.key, "snapfusion.source": source,
        "snapfusion.attention": spec.attention or "", "snapfusion.compression": compression.get("mode", "none"),
    })
    outputs = describe_features(mlmodel.get_spec().description.output)
    # 4. save (and chunk)
    path = out_dir / spec.file
    mlmodel.save(str(path))
    files = [spec.file]
    if spec.key == "unet" and options.chunk_unet:
        files = chunk_unet(path, out_dir)
    del mlmodel
    gc.collect()
    size = sum(dir_size(out_dir / f) for f in files)
    digest = tree_sha256(out_dir / files[0]) if len(files) == 1 else ",".join(tree_sha256(out_dir / f) for f in files)
    return ComponentResult(spec.key, files, time.perf_counter() - start, size, compression, outputs, digest)


def chunk_unet(path: Path, out_dir: Path) -> list[str]:
    """Split Unet.mlpackage into UnetChunk1/2.mlpackage of about equal size."""
    from .components import CHUNK_NAMES

    ct = quiet_coremltools()
    work = out_dir / ".chunks"
    ct.models.utils.bisect_model(str(path), str(work), check_output_correctness=False)
    stem = path.stem
    for i, name in enumerate(CHUNK_NAMES, start=1):
        produced = work / f"{stem}_chunk{i}.mlpackage"
        if not produced.exists():
            raise UserError(f"chunking {path.name} did not produce {produced.name}")
        produced.rename(out_dir / name)
    import shutil

    shutil.rmtree(work)
    shutil.rmtree(path)
    return list(CHUNK_NAMES)
