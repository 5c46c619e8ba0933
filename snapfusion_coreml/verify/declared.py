"""Does each package take and return exactly what pipeline.json declares for its component?

pipeline.json is what the Swift app reads to build its inputs (docs/contracts.md section 1), so
a declared shape or dtype that differs from the package's own description is a broken folder
even when every PSNR is fine. For a chunked UNet, chunk 1 takes declared inputs, each later
chunk takes declared inputs or earlier chunks' outputs, and the last chunk returns the declared
outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..contracts.pipeline_json import PIPELINE_JSON, Component, TensorSpec


def _fmt(t: dict) -> str:
    return f"{tuple(t.get('shape', ()))} {t.get('dtype')}"


def _declared(items: tuple[TensorSpec, ...]) -> dict[str, dict]:
    """name -> {"shape", "dtype"} of a declared tensor list."""
    return {t.name: {"shape": list(t.shape), "dtype": t.dtype} for t in items}


def package_features(package: Path, function: str | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
    """(inputs, outputs) of a package (of one function of a multifunction package, default its
    default function) as name -> {"shape", "dtype"}, read from its spec."""
    from ..coreml.features import describe_features
    from ..coreml.package import function_description, read_spec
    from ..coreml.tools import quiet_coremltools

    quiet_coremltools()
    described = function_description(read_spec(package), function)
    return ({f["name"]: {"shape": f["shape"], "dtype": f["dtype"]} for f in describe_features(described.input)},
            {f["name"]: {"shape": f["shape"], "dtype": f["dtype"]} for f in describe_features(described.output)})


def declared_io_problems(folder: Path, key: str, component: Component, files: list[str],
                         features: Callable[[Path], tuple[dict[str, dict], dict[str, dict]]] | None = None) -> list[str]:
    """One phrase per input or output where the packages and pipeline.json disagree (empty: they agree).
    `features` reads a file's (inputs, outputs): a Core ML package's spec (package_features) by default; a Core AI
    asset's loaded function (coreai.AssetRunner.features) for `.aimodel` folders."""
    problems: list[str] = []
    inputs, outputs = _declared(component.inputs), _declared(component.outputs)
    available, used, produced = dict(inputs), set(), {}
    for name in files:
        got_in, got_out = (features or package_features)(folder / name)
        for tensor, got in got_in.items():
            want = available.get(tensor)
            if want is None:
                problems.append(f"{name} takes input {tensor} {_fmt(got)}, which {PIPELINE_JSON} does not declare for {key}")
            elif want != got:
                problems.append(f"{name} input {tensor}: {PIPELINE_JSON} declares {_fmt(want)}, the package takes {_fmt(got)}")
            used.add(tensor)
        available.update(got_out)
        produced = got_out
    for tensor in sorted(set(inputs) - used):
        problems.append(f"{PIPELINE_JSON} declares input {tensor} {_fmt(inputs[tensor])} for {key}, "
                        f"which no package of it takes ({', '.join(files)})")
    for tensor, want in outputs.items():
        got = produced.get(tensor)
        if got is None:
            problems.append(f"{PIPELINE_JSON} declares output {tensor} {_fmt(want)} for {key}, "
                            f"which {files[-1]} does not return")
        elif got != want:
            problems.append(f"{files[-1]} output {tensor}: {PIPELINE_JSON} declares {_fmt(want)}, "
                            f"the package returns {_fmt(got)}")
    for tensor in sorted(set(produced) - set(outputs)):
        problems.append(f"{files[-1]} returns output {tensor} {_fmt(produced[tensor])}, "
                        f"which {PIPELINE_JSON} does not declare for {key}")
    return problems
