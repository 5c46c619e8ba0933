"""`verify`: run every package of a converted folder and compare it with its PyTorch reference.

    report = verify_folder("out")            # reference: pipeline.json's source.model
    report.ok, report.failures()

For each component pipeline.json lists (a chunked UNet runs chunk 1, then chunk 2 on chunk 1's
outputs plus the UNet inputs it names), and in a folder of several sizes for each function of its
multifunction packages (each size's inputs and PyTorch reference at that size), the deterministic inputs of reference.py go through the
interpreter in each mode ("fp32": reference math; "fp16": the program's declared precision, so
fp16 overflow shows as inf/NaN) and, on macOS, through Core ML itself ("coreml"). Every output
is compared with the PyTorch reference by `metrics.compare`.

A Core AI folder (components of pipeline.json `format` "coreai", `.aimodel` assets) runs in one
mode, "coreai": Apple's Core AI runtime (coreai-core) on this machine, with the same inputs,
reference and PSNR gate.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..contracts.pipeline_json import PIPELINE_JSON, SINGLE_FUNCTION, Size, tensors_at
from ..coreai.runtime import AssetRunner
from ..coreml.package import package_functions
from ..digests import tree_sha256
from ..errors import UserError, expected
from ..interpreter.execute import MODES, run_chain
from ..interpreter.folder import open_folder_runner
from ..interpreter.program import load_program
from ..metrics import MIN_PSNR_DB, compare
from . import native
from .declared import declared_io_problems, package_features
from .reference import component_inputs, load_reference, reference_outputs
from .report import OutputCheck, VerifyReport

COREAI_MODE = "coreai"  # Apple's Core AI runtime over .aimodel assets
ALL_MODES = (*MODES, native.MODE, COREAI_MODE)


def parse_modes(text: str | None) -> tuple[str, ...] | None:
    """--modes "fp32,fp16[,coreml]" -> a tuple; None (the default) stays None."""
    if text is None:
        return None
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in ALL_MODES]
    if bad or not modes:
        raise UserError(f"expected --modes from {', '.join(ALL_MODES)}, got {text!r}")
    return modes


def resolve_modes(modes: tuple[str, ...] | None, coreai: bool = False) -> tuple[tuple[str, ...], list[str]]:
    """(modes to run, notes). Default: both interpreter modes, plus Core ML where it runs; a Core AI
    folder (`coreai`): its one mode."""
    if coreai:
        if modes is not None and modes != (COREAI_MODE,):
            raise UserError(f"expected --modes {COREAI_MODE} for a Core AI folder (.aimodel assets), got {','.join(modes)}")
        return (COREAI_MODE,), ["Core AI assets ran in Apple's Core AI runtime (coreai-core) on this machine"]
    if modes is not None and COREAI_MODE in modes:
        raise UserError(f"expected --modes without {COREAI_MODE} for a Core ML folder (.mlpackage), got {','.join(modes)}")
    reason = native.unavailable_reason()
    if modes is None:
        return (MODES + (native.MODE,), []) if reason is None else (MODES, [reason])
    if native.MODE in modes and reason is not None:
        raise UserError(f"expected --modes without {native.MODE} here: {reason}")
    return modes, []


def verify_folder(out: Path | str, reference: str | None = None, min_psnr: float = MIN_PSNR_DB,
                  modes: tuple[str, ...] | None = None,
                  on_step: Callable[[str], None] | None = None, allow_pickle: bool = False) -> VerifyReport:
    """Verify every package of the converted folder `out` against its PyTorch reference.

    Args:
        out: a folder written by `convert` (with pipeline.json).
        reference: the PyTorch model to compare with; default pipeline.json's source.model.
        min_psnr: the pass threshold in dB.
        modes: from ALL_MODES; None = "fp32", "fp16" and, on macOS, "coreml".
        on_step: called with a short description before each component runs.
        allow_pickle: let the reference load pickle weights (.bin/.ckpt).
    """
    folder = Path(out)
    # 1. pipeline.json and the packages it lists
    pipeline_manifest = open_folder_runner(folder)
    formats = {c.format for c in pipeline_manifest.components.values()}
    if len(formats) > 1:
        raise expected("components of one format", ", ".join(sorted(formats)), str(folder / PIPELINE_JSON))
    coreai = formats == {"coreai"}
    run_modes, notes = resolve_modes(modes, coreai)
    assets = AssetRunner() if coreai else None
    try:
        return _verify(folder, pipeline_manifest, reference, min_psnr, run_modes, notes, on_step, allow_pickle, assets)
    finally:
        if assets is not None:
            assets.close()


def _verify(folder: Path, pipeline_manifest, reference: str | None, min_psnr: float, run_modes: tuple[str, ...],
            notes: list[str], on_step, allow_pickle: bool, assets: AssetRunner | None) -> VerifyReport:
    # 2. the reference model
    model = reference or pipeline_manifest.source.model
    pipeline = load_reference(model, pipeline_manifest, folder, given=reference is not None, allow_pickle=allow_pickle)
    report = VerifyReport(str(folder), str(model), float(min_psnr), run_modes, notes=notes)

    # 3. every component: integrity, then each of its functions (one per size): declared inputs and
    #    outputs, reference, each mode
    default = pipeline_manifest.size_list[0]
    for key, component in pipeline_manifest.components.items():
        files = component.files
        digest = ",".join(tree_sha256(folder / f) for f in files)
        if component.sha256 and digest != component.sha256:
            report.integrity.append(f"{', '.join(files)} differs from its sha256 in {PIPELINE_JSON} (altered after convert)")
        for size, function in component_functions(folder, component, pipeline_manifest):
            declared = replace(component, inputs=tensors_at(component.inputs, default, size),
                               outputs=tensors_at(component.outputs, default, size))
            features = assets.features if assets else \
                None if function == SINGLE_FUNCTION else partial(package_features, function=function)
            mismatches = declared_io_problems(folder, key, declared, files, features)
            if mismatches:  # inputs built from the declaration could not be trusted: not run
                report.integrity.extend(mismatches if function == SINGLE_FUNCTION else
                                        [f"{function}: {problem}" for problem in mismatches])
                continue
            if on_step:
                on_step(f"{key}: {', '.join(files)}" + ("" if function == SINGLE_FUNCTION else f" {function}"))
            _check_function(report, folder, pipeline, pipeline_manifest, key, declared, size, function, run_modes, assets)
    return report


def component_functions(folder: Path, component, pipeline_manifest) -> list[tuple[Size, str]]:
    """(size, package function) pairs to check for a component: every listed size of a multifunction
    package, or the default size as `main` for a one-function package (the same at every size)."""
    sizes = pipeline_manifest.size_list
    if component.format == "coreai":
        return [(sizes[0], SINGLE_FUNCTION)]
    names, _ = package_functions(folder / component.files[0])
    if names == [SINGLE_FUNCTION]:
        return [(sizes[0], SINGLE_FUNCTION)]
    missing = [size.function for size in sizes if size.function not in names]
    if missing or len(names) != len(sizes):
        raise expected(f"functions {', '.join(s.function for s in sizes)} (pipeline.json sizes)",
                       ", ".join(names), str(folder / component.files[0]))
    return [(size, size.function) for size in sizes]


def _check_function(report: VerifyReport, folder: Path, pipeline, pipeline_manifest, key: str, component, size: Size,
                    function: str, run_modes: tuple[str, ...], assets: AssetRunner | None) -> None:
    """Run one function of a component's packages in every mode and compare with PyTorch at its size."""
    files = component.files
    inputs = component_inputs(key, component.inputs, folder, pipeline_manifest.tokenizer.pad_token_id)
    expected_outputs = reference_outputs(pipeline, pipeline_manifest, key, inputs, size.latent)
    name = None if function == SINGLE_FUNCTION else function
    programs = [load_program(folder / f, name) for f in files] if set(run_modes) & set(MODES) else []
    for mode in run_modes:
        start = time.perf_counter()
        if mode == COREAI_MODE:
            got = assets.run(folder / files[0], inputs)
        elif mode == native.MODE:
            got = native.predict_chain([folder / f for f in files], inputs, name)
        else:
            got = run_chain(programs, inputs, mode)
        seconds = time.perf_counter() - start
        for output, ref in expected_outputs.items():
            value = np.asarray(got[output], dtype=np.float32) if output in got else None
            if value is None or value.shape != ref.shape:
                found = f"outputs {sorted(got)}" if value is None else f"{output} of shape {value.shape}"
                raise expected(f"output {output} of shape {ref.shape}", found, str(folder / files[-1]))
            report.checks.append(OutputCheck(key, tuple(files), output, mode, tuple(ref.shape),
                                             compare(ref, value), seconds, function))
