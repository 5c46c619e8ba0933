"""What each component looks like to Core ML: its export module, input and output tensors.

Names and shapes are the contract of docs/contracts.md section 1 (Apple-compatible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import UNetLayout
from ..contracts.pipeline_json import GUIDANCE_INPUT, TensorSpec
from ..convert_spec import COMPONENTS
from ..errors import UserError
from ..pipeline import Pipeline
from ..tokenizer import MAX_LENGTH

FILE_NAMES = {"text_encoder": "TextEncoder.mlpackage", "unet": "Unet.mlpackage", "decoder": "VAEDecoder.mlpackage",
              "encoder": "VAEEncoder.mlpackage"}
CHUNK_NAMES = ("UnetChunk1.mlpackage", "UnetChunk2.mlpackage")
# Token ids enter the text encoder as float32, as in Apple's ml-stable-diffusion converter (its
# Swift pipeline feeds MLShapedArray<Float32>); every CLIP id (<= 49407 < 2^24) is exact in float32.
INPUT_IDS_DTYPE = "float32"


TORCH_DTYPES = {"float32": torch.float32, "int32": torch.int32}


def example_tensor(spec: TensorSpec, seed: int = 0) -> torch.Tensor:
    """A deterministic example input of `spec`: random normal floats, or real-looking token ids."""
    g = torch.Generator().manual_seed(seed)
    if spec.name == "timestep":  # spread over the training range, noisiest first
        return torch.linspace(999, 1, spec.shape[0]).round()
    if spec.name == "input_ids" or spec.dtype == "int32":
        ids = torch.full(spec.shape, 49407, dtype=torch.int32)  # padded with <|endoftext|>
        ids[..., 0] = 49406
        ids[..., 1:8] = torch.randint(300, 40000, spec.shape[:-1] + (7,), generator=g, dtype=torch.int32)
        return ids.to(TORCH_DTYPES[spec.dtype])
    return torch.randn(spec.shape, generator=g)


class UnetExport(nn.Module):
    """sample (B, C, h, w), timestep (B,), encoder_hidden_states (B, D, 1, 77)
    [, timestep_cond (B, E): the guidance embedding of UNets that have one] -> noise_pred (B, C, h, w)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond)


@dataclass
class ComponentSpec:
    key: str  # "text_encoder" | "unet" | "decoder" | "encoder"
    file: str
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    compress: bool  # Apple palettizes text encoder and UNet, keeps the VAE (decoder, encoder) fp16
    attention: str | None = None

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return tuple(example_tensor(spec, seed=i) for i, spec in enumerate(self.inputs))


def component_spec(key: str, module: nn.Module, layout: UNetLayout, latent: tuple[int, int] | int,
                   unet_batch: int = 2) -> ComponentSpec:
    """The export description of one component ("text_encoder" | "unet" | "decoder" | "encoder")
    around its loaded module; `latent` is the latent (height, width) (an int for a square), the
    UNet's inputs have batch `unet_batch`; the encoder takes the image of that latent."""
    from ..modeling.text_encoder import TextEncoderExport

    h, w = (latent, latent) if isinstance(latent, int) else latent
    b = unet_batch
    if key == "text_encoder":
        tokens = module.config.max_position_embeddings  # the context length, CLIP's 77
        return ComponentSpec(key, FILE_NAMES[key], TextEncoderExport(module).eval(),
                             (TensorSpec("input_ids", (1, tokens), INPUT_IDS_DTYPE),),
                             ("last_hidden_state", "pooled_outputs"), True)
    if key == "unet":
        inputs = (TensorSpec("sample", (b, layout.in_channels, h, w)), TensorSpec("timestep", (b,)),
                  TensorSpec("encoder_hidden_states", (b, layout.cross_attention_dim, 1, MAX_LENGTH)))
        if layout.time_cond_proj_dim is not None:
            inputs += (TensorSpec(GUIDANCE_INPUT, (b, layout.time_cond_proj_dim)),)
        return ComponentSpec(key, FILE_NAMES[key], UnetExport(module).eval(), inputs, ("noise_pred",), True,
                             module.attention.value)
    if key == "decoder":
        return ComponentSpec(key, FILE_NAMES[key], module.eval(), (TensorSpec("z", (1, module.config.latent_channels, h, w)),),
                             ("image",), False)
    if key == "encoder":  # the RGB image in [-1, 1] -> moments (mean, log-variance): Apple's VAEEncoder
        f = module.config.latent_factor
        return ComponentSpec(key, FILE_NAMES[key], module.eval(), (TensorSpec("z", (1, module.config.in_channels, h * f, w * f)),),
                             ("latent",), False)
    raise ValueError(f"unknown component {key!r}")


def component_specs(pipeline: Pipeline, latent: tuple[int, int] | int, components: tuple[str, ...] = COMPONENTS,
                    unet_batch: int = 2) -> list[ComponentSpec]:
    """The specs of the requested components of a loaded pipeline, in conversion order (a
    UserError when `encoder` is asked of a pipeline without one)."""
    if "encoder" in components and pipeline.encoder is None:
        raise UserError(f"expected a model with a VAE encoder, got {pipeline.source or 'one'} without one")
    return [component_spec(key, getattr(pipeline, key), pipeline.unet.layout, latent, unet_batch)
            for key in COMPONENTS if key in components]


def numpy_inputs(spec: ComponentSpec) -> dict[str, np.ndarray]:
    return {t.name: x.numpy() for t, x in zip(spec.inputs, spec.example_inputs())}
