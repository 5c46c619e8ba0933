"""Session-wide conversions of the tiny modules (each converted once, reused by every test)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from . import tiny_models

IDS_LEN = 77
VOCAB = 1000


def token_ids() -> np.ndarray:
    """(1, 77) int32 like a tokenizer's: bos, words, eos, then eos padding."""
    rng = np.random.default_rng(0)
    ids = np.full((1, IDS_LEN), VOCAB - 1, dtype=np.int32)
    ids[0, 0] = VOCAB - 2
    ids[0, 1:9] = rng.integers(0, VOCAB - 2, size=8)
    return ids


def _inputs():
    g = torch.Generator().manual_seed(1)
    return {
        "text": {"input_ids": token_ids()},
        "unet": {
            "sample": torch.randn(2, 4, 8, 8, generator=g).numpy(),
            "timestep": np.array([999.0, 499.0], dtype=np.float32),
            "encoder_hidden_states": torch.randn(2, 24, 1, 7, generator=g).numpy(),
        },
        "decoder": {"z": torch.randn(1, 4, 8, 8, generator=g).numpy()},
        "overflow": {"x": (torch.rand(1, 8, generator=g) + 0.5).numpy()},
    }


INPUTS = _inputs()
OUTPUTS = {"text": ["last_hidden_state", "pooled_outputs"], "unet": ["noise_pred"],
           "decoder": ["image"], "overflow": ["y"]}


def build_module(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return {"text": lambda: tiny_models.TextEncoder(VOCAB), "unet": tiny_models.UNet,
            "decoder": tiny_models.Decoder, "overflow": tiny_models.Overflow}[kind]().eval()


def convert(kind: str, target: str = "iOS16"):
    """Trace and convert a tiny module; returns (torch module, MLModel)."""
    import coremltools as ct

    module = build_module(kind)
    example = {k: torch.from_numpy(v) for k, v in INPUTS[kind].items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, tuple(example.values()), strict=False)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name=k, shape=v.shape, dtype=v.dtype) for k, v in INPUTS[kind].items()],
            outputs=[ct.TensorType(name=n) for n in OUTPUTS[kind]],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, target),
        )
    return module, mlmodel


def torch_reference(module: torch.nn.Module, kind: str) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = module(*(torch.from_numpy(v) for v in INPUTS[kind].values()))
    out = out if isinstance(out, tuple) else (out,)
    return {n: o.numpy() for n, o in zip(OUTPUTS[kind], out)}


COMPRESSORS = {"palettize": "OpPalettizerConfig", "quantize": "OpLinearQuantizerConfig",
               "prune": "OpMagnitudePrunerConfig"}


def compress(mlmodel, method: str, options: dict):
    """palettize / quantize / prune the weights of a converted model (weights of 32+ values)."""
    import coremltools.optimize.coreml as cto

    op_config = getattr(cto, COMPRESSORS[method])(weight_threshold=32, **options)
    config = cto.OptimizationConfig(global_config=op_config)
    run = {"palettize": cto.palettize_weights, "quantize": cto.linear_quantize_weights,
           "prune": cto.prune_weights}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(mlmodel, config)


class Packages:
    """Converted packages on disk, made on first request and kept for the session."""

    def __init__(self, root: Path):
        self.root = root
        self._models: dict[tuple, tuple] = {}
        self._paths: dict[tuple, Path] = {}

    def model(self, kind: str, target: str = "iOS16"):
        """(torch module, MLModel, torch reference outputs), converted once."""
        key = (kind, target)
        if key not in self._models:
            module, mlmodel = convert(kind, target)
            self._models[key] = (module, mlmodel, torch_reference(module, kind))
        return self._models[key]

    def get(self, kind: str, target: str = "iOS16", method: str | None = None, decompressed: bool = False,
            **options) -> tuple[Path, dict[str, np.ndarray]]:
        """(package path, torch reference outputs); `method` compresses the weights and
        `decompressed` then expands them back with coremltools' own decoder."""
        import coremltools.optimize.coreml as cto

        key = (kind, target, method, decompressed, tuple(sorted(options.items())))
        _, mlmodel, reference = self.model(kind, target)
        if key not in self._paths:
            if method:
                mlmodel = compress(mlmodel, method, options)
                if decompressed:
                    mlmodel = cto.decompress_weights(mlmodel)
            path = self.root / f"{kind}_{len(self._paths)}.mlpackage"
            mlmodel.save(str(path))
            self._paths[key] = path
        return self._paths[key], reference


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> Packages:
    return Packages(tmp_path_factory.mktemp("packages"))
