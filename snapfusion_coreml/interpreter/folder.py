"""A converted folder (docs/contracts.md sections 1-2) whose packages run in the interpreter.

    folder = FolderRunner("out", precision="fp16")
    outputs = folder.run("unet", {"sample": ..., "timestep": ..., "encoder_hidden_states": ...})

Programs are read on first use and kept. A chunked UNet runs chunk 1, then chunk 2 on the UNet
inputs and chunk 1's outputs; callers always name the component ("unet"). In a folder of several
sizes (pipeline.json `sizes`) the size-dependent packages are multifunction packages:
`folder.run("unet", inputs, function="image_64x96")` runs that size's function (default: the
default size's); a one-function component (the text encoder) runs `main` for every size. A Core AI component
(pipeline.json `format` "coreai", an `.aimodel` asset) runs in Apple's Core AI runtime instead
(coreai.AssetRunner), in the asset's own float16 precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contracts.pipeline_json import PIPELINE_JSON, SINGLE_FUNCTION, Component, PipelineManifest, TensorSpec
from ..coreai.runtime import ASSET_SUFFIX, AssetRunner, check_asset
from ..coreml.package import package_functions
from ..digests import tree_sha256
from ..errors import expected
from .execute import MODES, run_chain
from .program import Program, load_program


def open_folder_runner(out: Path | str) -> PipelineManifest:
    """The pipeline manifest of the converted folder `out`, checked: its values and listed packages
    (Core AI assets: complete, their programs matching the digests beside them)."""
    folder = Path(out)
    if not folder.is_dir():
        raise expected("a converted folder", "nothing at that path" if not folder.exists() else "a file", str(folder))
    pipeline_manifest = PipelineManifest.read(folder)
    for key, component in pipeline_manifest.components.items():
        for name in component.files:
            if not (folder / name).is_dir():
                raise expected(f"package {name} (listed for {key} in {PIPELINE_JSON})", "no such package", str(folder))
            if (component.format == "coreai") != name.endswith(ASSET_SUFFIX):
                raise expected(f"{key} files ending in {ASSET_SUFFIX if component.format == 'coreai' else '.mlpackage'} "
                               f"(format {component.format!r})", name, str(folder / PIPELINE_JSON))
            if component.format == "coreai":  # before anything runs: the runtime aborts on a truncated program
                check_asset(folder / name)
    return pipeline_manifest


class FolderRunner:
    """The packages of a converted folder, run by the interpreter in `precision` ("fp32" | "fp16")."""

    def __init__(self, out: Path | str, precision: str = "fp16"):
        if precision not in MODES:
            raise expected(f"precision {' or '.join(MODES)}", repr(precision))
        self.path = Path(out)
        self.precision = precision
        self.pipeline_manifest = open_folder_runner(self.path)
        self._programs: dict[tuple[str, str | None], list[Program]] = {}
        self._functions: dict[str, list[str]] = {}  # component -> its package's functions
        self._assets: AssetRunner | None = None
        if precision != "fp16" and self.formats != {"coreml"}:
            raise expected("precision fp16 for a Core AI folder (its assets compute in float16)", repr(precision),
                           str(self.pipeline_json))

    @property
    def pipeline_json(self) -> Path:
        return self.path / PIPELINE_JSON

    @property
    def components(self) -> dict[str, Component]:
        return self.pipeline_manifest.components

    def component(self, key: str) -> Component:
        return self.pipeline_manifest.component(key, str(self.pipeline_json))

    def function(self, key: str, function: str | None) -> str | None:
        """The package function that runs `function` (a size's function name, None: the default)
        for component `key`: the function itself, or None where the component's package has one
        function (`main`, the same at every size); one error naming the functions otherwise."""
        if function is None:
            return None
        component = self.component(key)
        if key not in self._functions:
            self._functions[key] = [SINGLE_FUNCTION] if component.format == "coreai" else \
                package_functions(self.path / component.files[0])[0]
        names = self._functions[key]
        if function in names:
            return function
        if names == [SINGLE_FUNCTION] and function in {size.function for size in self.pipeline_manifest.size_list}:
            return None
        raise expected(f"a function from {', '.join(names)} for {key}", repr(function), str(self.path / component.files[0]))

    def programs(self, key: str, function: str | None = None) -> list[Program]:
        """The component's programs (chunks in order) of one function (None: the default), read on first use."""
        name = self.function(key, function)
        if (key, name) not in self._programs:
            self._programs[(key, name)] = [load_program(self.path / f, name) for f in self.component(key).files]
        return self._programs[(key, name)]

    def check_digests(self) -> None:
        """Refuse packages whose contents differ from the sha256 pipeline.json records (altered or
        damaged after convert), before they run."""
        for key, component in self.components.items():
            if not component.sha256:
                continue  # folders written before sha256 was recorded
            try:
                digest = ",".join(tree_sha256(self.path / f) for f in component.files)
            except (OSError, RuntimeError) as exc:  # an unreadable file, a symlink loop
                raise expected(f"readable packages for {key}", f'"{getattr(exc, "strerror", None) or exc}"',
                               str(self.path)) from None
            if digest != component.sha256:
                raise expected(f"{', '.join(component.files)} with the sha256 recorded in {PIPELINE_JSON}",
                               "other contents (changed after convert; `verify` compares every output)",
                               str(self.path))
    @property
    def formats(self) -> set[str]:
        """The formats of the folder's components ({"coreml"}, {"coreai"})."""
        return {c.format for c in self.components.values()}

    def assets(self) -> AssetRunner:
        """Apple's Core AI runtime over this folder's `.aimodel` assets (loaded on first use)."""
        if self._assets is None:
            self._assets = AssetRunner()
        return self._assets

    def close(self) -> None:
        """Release loaded Core AI assets (Core ML programs need nothing)."""
        if self._assets is not None:
            self._assets.close()
            self._assets = None

    def declared_inputs(self, key: str) -> tuple[TensorSpec, ...]:
        """The component's inputs as pipeline.json declares them."""
        return self.component(key).inputs

    def run(self, key: str, inputs: dict[str, np.ndarray], function: str | None = None) -> dict[str, np.ndarray]:
        """Run component `key` on `inputs` (name -> array); its outputs, floats as float32.
        `function`: the size to run (`sizes[].function`; None: the default size)."""
        component = self.component(key)
        if component.format == "coreai":
            self.function(key, function)
            return self.assets().run(self.path / component.files[0], inputs)
        programs = self.programs(key, function)
        declared = {name for p in programs for name in p.inputs} - {o for p in programs for o in p.outputs}
        if set(inputs) != declared:
            raise expected(f"{key} inputs {sorted(declared)}", f"{sorted(inputs)}", str(self.pipeline_json))
        return run_chain(programs, inputs, self.precision)
