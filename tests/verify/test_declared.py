"""verify's check of every package's inputs and outputs against pipeline.json (verify/declared.py),
for a chunked UNet: chunk 2 takes chunk 1's outputs, only the last chunk's outputs are declared."""

from __future__ import annotations

import copy

from snapfusion_coreml.contracts.pipeline_json import Component, TensorSpec
from snapfusion_coreml.verify import declared


def _t(shape, dtype="float32"):
    return {"shape": list(shape), "dtype": dtype}


CHUNKS = {  # what each package's own description says (as coremltools' bisect_model splits a UNet)
    "UnetChunk1.mlpackage": ({"sample": _t((2, 4, 8, 8)), "timestep": _t((2,)),
                              "encoder_hidden_states": _t((2, 32, 1, 77))},
                             {"hidden": _t((2, 16, 4, 4)), "skip_0": _t((2, 8, 8, 8))}),
    "UnetChunk2.mlpackage": ({"hidden": _t((2, 16, 4, 4)), "skip_0": _t((2, 8, 8, 8)), "timestep": _t((2,)),
                              "encoder_hidden_states": _t((2, 32, 1, 77))},
                             {"noise_pred": _t((2, 4, 8, 8))}),
}
DECLARED = {
    "chunks": list(CHUNKS),
    "inputs": [{"name": "sample", "shape": [2, 4, 8, 8], "dtype": "float32"},
               {"name": "timestep", "shape": [2], "dtype": "float32"},
               {"name": "encoder_hidden_states", "shape": [2, 32, 1, 77], "dtype": "float32"}],
    "outputs": [{"name": "noise_pred", "shape": [2, 4, 8, 8], "dtype": "float32"}],
}


def _problems(monkeypatch, tmp_path, component, chunks=CHUNKS):
    monkeypatch.setattr(declared, "package_features", lambda path: chunks[path.name])
    typed = Component(None, tuple(component["chunks"]), *(tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"])
                                                              for t in component[kind]) for kind in ("inputs", "outputs")))
    return declared.declared_io_problems(tmp_path, "unet", typed, list(chunks))


def test_chunks_that_match_the_declaration(monkeypatch, tmp_path):
    assert _problems(monkeypatch, tmp_path, DECLARED) == []


def test_each_kind_of_disagreement_is_named(monkeypatch, tmp_path):
    component = copy.deepcopy(DECLARED)
    component["outputs"][0]["shape"] = [2, 4, 16, 16]
    component["inputs"][1]["dtype"] = "int32"
    component["inputs"].append({"name": "mask", "shape": [1], "dtype": "float32"})
    assert _problems(monkeypatch, tmp_path, component) == [
        "UnetChunk1.mlpackage input timestep: pipeline.json declares (2,) int32, the package takes (2,) float32",
        "UnetChunk2.mlpackage input timestep: pipeline.json declares (2,) int32, the package takes (2,) float32",
        "pipeline.json declares input mask (1,) float32 for unet, which no package of it takes "
        "(UnetChunk1.mlpackage, UnetChunk2.mlpackage)",
        "UnetChunk2.mlpackage output noise_pred: pipeline.json declares (2, 4, 16, 16) float32, "
        "the package returns (2, 4, 8, 8) float32",
    ]


def test_undeclared_tensors(monkeypatch, tmp_path):
    chunks = copy.deepcopy(CHUNKS)
    chunks["UnetChunk1.mlpackage"][0]["cond_scale"] = _t((1,))
    chunks["UnetChunk2.mlpackage"][1]["extra"] = _t((2,))
    assert _problems(monkeypatch, tmp_path, DECLARED, chunks) == [
        "UnetChunk1.mlpackage takes input cond_scale (1,) float32, which pipeline.json does not declare for unet",
        "UnetChunk2.mlpackage returns output extra (2,) float32, which pipeline.json does not declare for unet",
    ]
