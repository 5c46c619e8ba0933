"""Read an .mlpackage with coremltools alone, without running it (Linux or macOS, no Core ML runtime):
its model spec, its functions and their declared inputs and outputs, and its MIL program rebuilt by
coremltools' milproto frontend. The interpreter (interpreter/program.py), `verify` and `inspect` read
packages through these.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import expected


def _model_file(package: Path) -> Path:
    """The model spec inside an .mlpackage, found through its Manifest.json."""
    if not package.exists():
        raise expected("an .mlpackage folder", "a path that does not exist", str(package))
    if package.suffix == ".mlmodelc":
        raise expected("an .mlpackage (a compiled .mlmodelc cannot be read back)", "an .mlmodelc", str(package))
    manifest = package / "Manifest.json"
    if not package.is_dir() or not manifest.is_file():
        raise expected("an .mlpackage folder with a Manifest.json", "no Manifest.json", str(package))
    try:
        info = json.loads(manifest.read_text())
        entry = info["itemInfoEntries"][info["rootModelIdentifier"]]
        model = package / "Data" / entry["path"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise expected("a valid Manifest.json", f"an unreadable one ({type(e).__name__})", str(manifest)) from None
    except OSError as e:
        raise expected("a readable Manifest.json", f'"{e.strerror}"', str(manifest)) from None
    try:
        data = package.resolve(strict=True) / "Data"
        inside = model.resolve(strict=True)
    except (OSError, RuntimeError) as e:  # a missing file, a symlink loop
        raise expected(f"the model spec {entry['path']}", f'"{getattr(e, "strerror", None) or e}"', str(package)) from None
    if data.resolve() not in inside.parents or not inside.is_file():
        raise expected(f"the model spec {entry['path']} inside {package.name}/Data", "a path outside it or no file",
                       str(package))
    return model


def read_spec(package: Path):
    """The package's Core ML model spec, read from its files alone. coremltools' `load_spec`
    opens the package for writing and rewrites Manifest.json; this leaves a read-only folder as it is."""
    from coremltools.proto import Model_pb2

    model = _model_file(package)
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(model.read_bytes())
    except Exception as e:  # a corrupt protobuf
        raise expected("a readable Core ML model spec", f"{type(e).__name__}: {e}", str(model)) from None
    return spec


def function_names(spec) -> tuple[list[str], str]:
    """(the functions of a package's spec, its default function): a multifunction package's, or
    (["main"], "main") for a package with one function."""
    functions = [f.name for f in spec.description.functions]
    if not functions:
        return ["main"], "main"
    return functions, spec.description.defaultFunctionName or functions[0]


def function_description(spec, function: str | None = None):
    """The description (`.input`, `.output`) of one function of a package's spec (default: its
    default function); a one-function package's model description."""
    if not spec.description.functions:
        return spec.description
    name = function or function_names(spec)[1]
    for described in spec.description.functions:
        if described.name == name:
            return described
    raise expected(f"a function from {', '.join(function_names(spec)[0])}", repr(name), "the package's model description")


def package_functions(package: Path) -> tuple[list[str], str]:
    """function_names of the package at `package`."""
    return function_names(read_spec(package))


def load_mil(package: Path, function: str | None = None):
    """The package's MIL program, rebuilt by coremltools' milproto frontend: every function, or
    only `function` (a name from package_functions) when given."""
    from .tools import quiet_coremltools

    quiet_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    model = _model_file(package)
    spec = read_spec(package)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise expected("an ML program (convert_to='mlprogram')", f"a {kind} model", str(package))
    if function is not None:
        names, _ = function_names(spec)
        if function not in names:
            raise expected(f"a function from {', '.join(names)}", repr(function), str(package))
        for other in [name for name in spec.mlProgram.functions if name != function]:
            del spec.mlProgram.functions[other]  # its constants are never read
    weights = model.parent / "weights"
    try:
        return load_milproto(spec, spec.specificationVersion, str(weights))
    except Exception as e:  # missing or truncated weight.bin, an op the frontend cannot build
        raise expected("a Core ML program coremltools can read back",
                       f"{type(e).__name__}: {e}", str(package)) from e
