"""What `verify` feeds each package and what PyTorch says the answer is.

Inputs are deterministic and follow the declared shapes of pipeline.json (convert.components.example_tensor:
normal noise with a fixed seed per input, a spread of timesteps), except the text encoder's ids,
which are a fixed prompt tokenized with the folder's own vocab.json + merges.txt. The reference is
the model the folder was converted from, loaded with the same UNet layout and attention, run
through the same export wrappers convert traced (so the UNet output is the raw prediction: v for
a v-prediction model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import resolve_layout
from ..contracts.pipeline_json import PIPELINE_JSON, PipelineManifest, TensorSpec
from ..convert.components import component_specs, example_tensor
from ..convert_spec import LoraSpec
from ..coreml.features import NUMPY_DTYPES
from ..errors import UserError
from ..modeling.attention import AttentionImpl
from ..modeling.loading import load_pipeline
from ..modeling.lora import LoraFile, read_lora
from ..modeling.source import looks_like_hub_id
from ..pipeline import Pipeline
from ..tokenizer import load_tokenizer, tokenize

PROMPT = "a photo of an astronaut riding a horse on mars"


def load_reference(model: str | None, pipeline_manifest: PipelineManifest, folder: Path, given: bool,
                   allow_pickle: bool = False) -> Pipeline:
    """The PyTorch pipeline `folder` was converted from, as convert built it.

    `model` is --reference (given=True), used as it is (a model with any LoRAs already fused), or
    pipeline.json's source.model (given=False), with the LoRAs of source.loras merged again at
    their scales from their recorded paths (each file checked against its sha256). A single-file
    checkpoint is read with pipeline.json's source.base.
    """
    where = "--reference" if given else f"pipeline.json source.model in {folder}"
    hub_id = given and looks_like_hub_id(model)
    if not model or not (Path(model).exists() or hub_id):  # a hub id only when asked for explicitly
        hint = "" if given else "; pass --reference MODEL"
        raise UserError(f"reference model not found: {model!r} ({where}){hint}")
    unet = pipeline_manifest.components.get("unet")
    attention = AttentionImpl((unet and unet.attention) or AttentionImpl.SPLIT_EINSUM.value)
    source = pipeline_manifest.source
    base = source.base  # a single-file checkpoint's architecture
    loras = () if given else recorded_loras(pipeline_manifest, folder)
    try:
        pipeline = load_pipeline(model, attention=attention, allow_pickle=allow_pickle, base=base, loras=loras)
    except UserError as exc:
        raise UserError(f"reference model {model!r} ({where}) could not be loaded: {exc}") from None
    layout_name = source.unet_layout
    if layout_name and pipeline.unet.layout.name != layout_name:
        # the folder was converted with --layout: map the reference onto the same layout
        pipeline = load_pipeline(model, layout=resolve_layout(layout_name), attention=attention, allow_pickle=allow_pickle,
                                 base=base, loras=loras)
    return pipeline


def recorded_loras(pipeline_manifest: PipelineManifest, folder: Path) -> tuple[LoraFile, ...]:
    """The LoRAs pipeline.json's source.loras names, read from their recorded paths."""
    loras = []
    for entry in pipeline_manifest.source.loras:
        path = Path(entry.path or entry.file)
        if not path.is_file():
            raise UserError(f"expected LoRA {entry.file} (source.loras in {folder / PIPELINE_JSON}) at {path}, "
                            f"found none; pass --reference MODEL with the LoRA fused")
        lora = read_lora(LoraSpec(path, float(entry.scale)))
        if entry.sha256 and lora.sha256 != entry.sha256:
            raise UserError(f"expected LoRA {path} to have the sha256 recorded in {folder / PIPELINE_JSON}, "
                            f"got a different file")
        loras.append(lora)
    return tuple(loras)


def component_inputs(key: str, declared: tuple[TensorSpec, ...], folder: Path,
                     pad_token_id: int | None = None) -> dict[str, np.ndarray]:
    """name -> array for every input pipeline.json declares for component `key` (token ids padded
    with `pad_token_id`, pipeline.json's tokenizer.pad_token_id, as the app pads them)."""
    inputs = {}
    for i, spec in enumerate(declared):
        if key == "text_encoder" and spec.name == "input_ids":
            ids = tokenize(load_tokenizer(folder, pad_token_id), [PROMPT] * spec.shape[0]).numpy().astype(NUMPY_DTYPES[spec.dtype])
            if ids.shape != spec.shape:
                raise UserError(f"expected input_ids of shape {spec.shape}, got {ids.shape} from the tokenizer (in {folder})")
            inputs[spec.name] = ids
        else:
            inputs[spec.name] = example_tensor(spec, seed=i).numpy().astype(NUMPY_DTYPES[spec.dtype])
    return inputs


def reference_outputs(pipeline: Pipeline, pipeline_manifest: PipelineManifest, key: str,
                      inputs: dict[str, np.ndarray], latent: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Run the PyTorch export module convert used for `key` on `inputs` at `latent` (height,
    width; default pipeline.json's latent); output name -> array."""
    spec = component_specs(pipeline, latent or pipeline_manifest.latent.size, (key,), pipeline_manifest.guidance.unet_batch)[0]
    names = [t.name for t in spec.inputs]
    if sorted(names) != sorted(inputs):
        raise UserError(f"expected {key} inputs {names}, got {sorted(inputs)} in pipeline.json")
    with torch.no_grad():
        out = spec.module(*(torch.from_numpy(inputs[n]) for n in names))
    out = out if isinstance(out, tuple) else (out,)
    return {name: o.float().numpy() for name, o in zip(spec.outputs, out)}
