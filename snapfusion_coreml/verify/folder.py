"""A converted folder (docs/contracts.md sections 1-2) whose packages run in the interpreter.

    folder = ConvertedFolder("out", precision="fp16")
    outputs = folder.run("unet", {"sample": ..., "timestep": ..., "encoder_hidden_states": ...})

Programs are read on first use and kept. A chunked UNet runs chunk 1, then chunk 2 on the UNet
inputs and chunk 1's outputs; callers always name the component ("unet").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..convert.manifest import MANIFEST, check_manifest
from ..errors import UserError, expected
from ..io import read_json
from .interpreter import MODES, run_chain
from .program import Program, load_program

COMPONENTS = ("text_encoder", "unet", "decoder")


def package_files(component: dict) -> list[str]:
    """The package file names of one pipeline.json component, in the order they run."""
    return list(component.get("chunks") or [component["file"]])


def open_converted_folder(out: Path | str) -> dict:
    """pipeline.json of the converted folder `out`, checked: its version, keys and listed packages."""
    folder = Path(out)
    if not folder.is_dir():
        raise expected("a converted folder", "nothing at that path" if not folder.exists() else "a file", str(folder))
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"expected {MANIFEST} in {folder} (an incomplete or foreign folder), found none")
    manifest = check_manifest(read_json(manifest_path, MANIFEST), str(manifest_path))
    for key, component in manifest["components"].items():
        if not isinstance(component, dict) or not (component.get("file") or component.get("chunks")):
            raise expected(f"components.{key} with a file or chunks", repr(component), str(manifest_path))
        for name in package_files(component):
            if not (folder / name).is_dir():
                raise expected(f"package {name} (listed for {key} in {MANIFEST})", "no such package", str(folder))
    return manifest


class ConvertedFolder:
    """The packages of a converted folder, run by the interpreter in `precision` ("fp32" | "fp16")."""

    def __init__(self, out: Path | str, precision: str = "fp16"):
        if precision not in MODES:
            raise expected(f"precision {' or '.join(MODES)}", repr(precision))
        self.path = Path(out)
        self.precision = precision
        self.manifest = open_converted_folder(self.path)
        self._programs: dict[str, list[Program]] = {}

    @property
    def components(self) -> dict[str, dict]:
        return self.manifest["components"]

    def component(self, key: str) -> dict:
        if key not in self.components:
            raise expected(f"a component from {sorted(self.components)}", repr(key), str(self.path / MANIFEST))
        return self.components[key]

    def programs(self, key: str) -> list[Program]:
        """The component's programs (chunks in order), read on first use."""
        if key not in self._programs:
            self._programs[key] = [load_program(self.path / f) for f in package_files(self.component(key))]
        return self._programs[key]

    def declared_inputs(self, key: str) -> list[dict]:
        """[{"name", "shape", "dtype"}] of the component as pipeline.json declares them."""
        return list(self.component(key).get("inputs") or [])

    def run(self, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run component `key` on `inputs` (name -> array); its outputs, floats as float32."""
        programs = self.programs(key)
        declared = {name for p in programs for name in p.inputs} - {o for p in programs for o in p.outputs}
        if set(inputs) != declared:
            raise expected(f"{key} inputs {sorted(declared)}", f"{sorted(inputs)}", str(self.path / MANIFEST))
        return run_chain(programs, inputs, self.precision)
