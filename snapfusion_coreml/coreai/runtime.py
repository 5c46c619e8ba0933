"""Running `.aimodel` assets on this machine with Apple's Core AI runtime (coreai-core).

    runner = AssetRunner()
    outputs = runner.run(Path("out/Unet.aimodel"), {"sample": ..., "timestep": ..., "encoder_hidden_states": ...})
    runner.close()

On Linux the runtime lowers an asset to its portable form and runs it on the CPU
(`AIModelAsset.executable()`); on macOS 27 the same call uses the OS framework. An asset is
loaded once and kept until close(), so a denoising loop pays the lowering once per component.

The runtime aborts the whole process on a truncated program (it cannot parse the bytecode), so
every asset is checked first (check_asset): the folder layout, the program's sha256 against the
digest Apple's writer stores beside it, and a readable `main` function.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, expected
from .tools import require_coreai

ASSET_SUFFIX = ".aimodel"
FUNCTION = "main"  # the one entry point convert writes
PROGRAM_SUFFIX, HASH_SUFFIX = ".mlirb", ".hash"  # the program bytecode and its sha256, as save_asset writes them


def check_asset(path: Path) -> None:
    """One UserError line unless `path` is a complete `.aimodel` asset with a `main` function."""
    path = Path(path)
    if path.suffix != ASSET_SUFFIX:
        raise expected(f"a Core AI asset ending in {ASSET_SUFFIX}", path.name, str(path.parent))
    if not path.is_dir():
        raise expected(f"a Core AI asset folder {path.name}", "nothing at that path" if not path.exists() else "a file",
                       str(path))
    programs = sorted(path.glob(f"*{PROGRAM_SUFFIX}"))
    if not programs:
        raise expected(f"a program (*{PROGRAM_SUFFIX}) in the Core AI asset", "none (not an .aimodel asset)", str(path))
    for program in programs:
        digest_file = program.with_suffix(HASH_SUFFIX)
        if digest_file.is_file() and hashlib.sha256(program.read_bytes()).digest() != digest_file.read_bytes():
            raise expected(f"{program.name} to match its sha256 in {digest_file.name}",
                           "a different program (truncated or altered after convert)", str(path))
    coreai = require_coreai("coreai.authoring")
    try:
        asset = coreai.AIModelAsset.load(path)
        summary = asset.summary(include_statistics=False)
    except RuntimeError as exc:
        raise expected("a readable Core AI asset", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                       str(path)) from None
    names = list(summary.function_names) if summary is not None else []
    if FUNCTION not in names:
        raise expected(f"a function {FUNCTION!r} in the Core AI asset", f"functions {names}", str(path))


class AssetRunner:
    """Loaded `.aimodel` assets, each run through its `main` function on numpy arrays."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loaded: dict[Path, tuple[AbstractAsyncContextManager, Any]] = {}

    def function(self, path: Path):
        """The asset's loaded `main` function (checked and loaded on first use)."""
        path = Path(path).resolve()
        if path not in self._loaded:
            check_asset(path)
            authoring = require_coreai("coreai.authoring")
            context = authoring.AIModelAsset.load(path).executable()
            model = self._loop.run_until_complete(context.__aenter__())
            try:
                fn = model.load_function(FUNCTION)
            except Exception:
                self._loop.run_until_complete(context.__aexit__(None, None, None))
                raise
            self._loaded[path] = (context, fn)
        return self._loaded[path][1]

    def features(self, path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
        """(inputs, outputs) of the asset's `main` as name -> {"shape", "dtype"}, as loaded."""
        desc = self.function(path).desc

        def one(d) -> dict:
            return {"shape": [int(s) if s is not None else -1 for s in d.shape], "dtype": str(d.dtype)}

        return ({n: one(desc.input_descriptor(n)) for n in desc.input_names},
                {n: one(desc.output_descriptor(n)) for n in desc.output_names})

    def run(self, path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the asset on `inputs` (name -> array, in the dtypes it declares); its outputs as numpy
        arrays (copies: the runtime's buffers are not kept)."""
        runtime = require_coreai("coreai.runtime")
        fn = self.function(path)
        declared = list(fn.desc.input_names)
        if sorted(inputs) != sorted(declared):
            raise expected(f"inputs {sorted(declared)}", str(sorted(inputs)), str(path))
        arrays = {name: runtime.NDArray(np.ascontiguousarray(value)) for name, value in inputs.items()}
        try:
            results = self._loop.run_until_complete(fn(arrays))
        except RuntimeError as exc:
            raise UserError(f"Core AI runtime failed on {path.name}: {str(exc).splitlines()[0] if str(exc) else exc!r} "
                            f"(in {path})") from None
        return {name: np.array(value.numpy(), copy=True) for name, value in results.items()}

    def close(self) -> None:
        """Release every loaded asset and the event loop."""
        for context, _ in reversed(list(self._loaded.values())):
            self._loop.run_until_complete(context.__aexit__(None, None, None))
        self._loaded.clear()
        self._loop.close()

    def __enter__(self) -> "AssetRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
