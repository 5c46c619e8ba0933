"""The converted packages as a pipeline backend: `generate OUT` and `eval` draw with the Core ML
programs (run by the interpreter) exactly what the phone computes from the same seed.

    pipeline = load_package_pipeline("out", precision="fp16")
    image = pipeline.generate("a red circle on a blue background", seed=0)

Everything the sampler needs comes from OUT: the tokenizer files and pad id, the noise schedule,
the sampler record, the guidance default, the latent scale factor and the image size (in a
folder of several sizes, any of pipeline.json's `sizes`: its packages' function of that size runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import PipelineDefaults, SchedulerConfig
from ..contracts.pipeline_json import GUIDANCE_INPUT
from ..coreml.features import NUMPY_DTYPES
from ..errors import UserError, expected
from ..image_size import ImageSize
from ..pipeline import SamplingPlan, StepCallback, generate_image
from ..samplers.settings import SamplerSettings, model_settings
from ..tokenizer import load_tokenizer
from .folder import FolderRunner

REQUIRED = ("text_encoder", "unet", "decoder")  # the VAE encoder only for image to image


class PackageBackend:
    """DiffusionBackend over a FolderRunner's components (text encoder, UNet, decoder and,
    for image to image, the VAE encoder)."""

    def __init__(self, folder: FolderRunner):
        missing = [k for k in REQUIRED if k not in folder.components]
        if missing:
            raise expected(f"all of {', '.join(REQUIRED)} in components", f"no {', '.join(missing)}",
                           str(folder.pipeline_json))
        self.folder = folder
        pipeline_manifest = folder.pipeline_manifest
        self.unet_batch = pipeline_manifest.guidance.unet_batch
        self.guidance_embedding_dim = pipeline_manifest.guidance.embedding_dim
        self.latent = pipeline_manifest.latent
        self.latent_channels = self.latent.channels
        # token ids in the dtype the package declares, as the app feeds them (float32 since 0.2, int32 before)
        ids = folder.component("text_encoder").input("input_ids")
        if ids is None:
            raise expected("a text_encoder input input_ids", "none declared", str(folder.pipeline_json))
        self._ids_dtype = NUMPY_DTYPES[ids.dtype]
        self.function: str | None = None  # the size's package function (None: the default size)

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        """The latent of `image` (None: the default size), one of the sizes the folder was converted
        for (else one error listing them); later UNet and decoder calls run that size's function."""
        image = ImageSize.square(image) if isinstance(image, int) else image
        manifest = self.folder.pipeline_manifest
        size = manifest.size(image, str(self.folder.pipeline_json))
        self.function = size.function if manifest.sizes else None
        return size.latent

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = [self.folder.run("text_encoder", {"input_ids": row[None].numpy().astype(self._ids_dtype)})["last_hidden_state"]
                for row in input_ids]  # the package takes one prompt at a time
        return torch.from_numpy(np.concatenate(rows, axis=0))

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
             timestep_cond: torch.Tensor | None = None) -> torch.Tensor:
        inputs = {"sample": _np(sample), "timestep": _np(timestep), "encoder_hidden_states": _np(context)}
        if timestep_cond is not None:
            inputs[GUIDANCE_INPUT] = _np(timestep_cond)
        return torch.from_numpy(self.folder.run("unet", inputs, self.function)["noise_pred"])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.folder.run("decoder", {"z": _np(z)}, self.function)["image"])

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        if "encoder" not in self.folder.components:
            raise UserError(f"expected a VAE encoder in {self.folder.path} for --init-image, found none: "
                            "convert with --components including encoder")
        return torch.from_numpy(self.folder.run("encoder", {"z": _np(image)}, self.function)["latent"])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


@dataclass
class PackagePipeline:
    """A converted folder with everything `generate_image` needs; `generate` mirrors Pipeline's."""

    folder: FolderRunner
    backend: PackageBackend
    tokenizer: object
    sampling: SamplingPlan  # pipeline.json's noise schedule and sampler record
    defaults: PipelineDefaults

    @property
    def source(self) -> str:
        return str(self.folder.path)

    @property
    def scheduler(self) -> SchedulerConfig:
        return self.sampling.scheduler

    def sampler_settings(self, override: str | None = None, eta: float | None = None) -> SamplerSettings:
        """The folder's sampler, or `override` planned over the folder's settings (as Pipeline's)."""
        own = self.sampling.sampler
        if override is None and eta is None:
            return own
        return model_settings(self.scheduler, own.as_scheduler_config(), str(self.folder.pipeline_json),
                              override or own.name, eta)

    @property
    def runtime(self) -> str:
        """What runs the components: the interpreter (Core ML folders) or Apple's Core AI runtime."""
        return "Core AI assets, Apple's Core AI runtime" if "coreai" in self.folder.formats else \
            f"Core ML packages, interpreter {self.folder.precision}"

    def close(self) -> None:
        self.folder.close()

    def generate(self, prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                 image_size: ImageSize | int | None = None, on_step: StepCallback | None = None,
                 negative_prompt: str = "", sampler: SamplerSettings | None = None, init_image=None,
                 strength: float = 0.8) -> np.ndarray:
        """As Pipeline.generate; `sampler` replaces the folder's sampler (replanned for the steps)."""
        sampling = self.sampling if sampler in (None, self.sampling.sampler) else SamplingPlan(self.scheduler, sampler)
        return generate_image(self.backend, self.tokenizer, sampling, self.defaults, prompt, steps,
                              guidance_scale, seed, image_size, on_step, negative_prompt, init_image=init_image,
                              strength=strength)


def load_package_pipeline(out: Path | str, precision: str = "fp16") -> PackagePipeline:
    """The converted folder `out` as a pipeline run by the interpreter in `precision`."""
    folder = FolderRunner(out, precision)
    folder.check_digests()
    pipeline_manifest = folder.pipeline_manifest
    record = pipeline_manifest.sampler
    defaults = PipelineDefaults(steps=record.default_steps, guidance_scale=float(pipeline_manifest.guidance.default_scale),
                                latent_scale_factor=float(pipeline_manifest.latent.scale_factor),
                                image_size=pipeline_manifest.latent.image.height)
    sampling = SamplingPlan(pipeline_manifest.scheduler, record.settings, record)
    return PackagePipeline(folder, PackageBackend(folder), folder_tokenizer(folder), sampling, defaults)


def folder_tokenizer(folder: FolderRunner):
    """OUT's CLIP tokenizer, padding with pipeline.json's tokenizer.pad_token_id."""
    tokenizer = load_tokenizer(folder.path)
    pad_id = folder.pipeline_manifest.tokenizer.pad_token_id
    if pad_id != tokenizer.pad_token_id:
        token = tokenizer.convert_ids_to_tokens(pad_id)
        if token is None or token == tokenizer.unk_token and pad_id != tokenizer.unk_token_id:
            raise expected(f"tokenizer.pad_token_id in the vocabulary of {folder.path / 'vocab.json'}", str(pad_id),
                           str(folder.pipeline_json))
        tokenizer.pad_token = token
    return tokenizer
