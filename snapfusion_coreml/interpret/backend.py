"""The converted packages as a pipeline backend: `generate OUT` and `eval` draw with the Core ML
programs (run by the interpreter) exactly what the phone computes from the same seed.

    pipeline = load_package_pipeline("out", precision="fp16")
    image = pipeline.generate("a red circle on a blue background", seed=0)

Everything the sampler needs comes from OUT: the tokenizer files and pad id, the noise schedule,
`sampler.timesteps`, the guidance default, the latent scale factor and the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import PipelineDefaults, SchedulerConfig
from ..convert.components import NUMPY_DTYPES
from ..convert.manifest import MANIFEST
from ..errors import UserError, expected
from ..image_size import VAE_FACTOR, ImageSize
from ..pipeline import StepCallback, generate_image
from ..tokenizer import load_tokenizer
from ..verify.folder import ConvertedFolder

REQUIRED = ("text_encoder", "unet", "decoder")


class PackageBackend:
    """DiffusionBackend over a ConvertedFolder's three components."""

    def __init__(self, folder: ConvertedFolder):
        missing = [k for k in REQUIRED if k not in folder.components]
        if missing:
            raise expected(f"all of {', '.join(REQUIRED)} in components", f"no {', '.join(missing)}",
                           str(folder.path / MANIFEST))
        self.folder = folder
        manifest = folder.manifest
        self.unet_batch = int(manifest.get("guidance", {}).get("unet_batch", 2))
        self.latent_channels = int(manifest["latent"]["channels"])
        self._latent = (int(manifest["latent"]["height"]), int(manifest["latent"]["width"]))
        # token ids in the dtype the package declares, as the app feeds them (float32 since 0.2, int32 before)
        ids = next((i for i in folder.declared_inputs("text_encoder") if i.get("name") == "input_ids"), {})
        self._ids_dtype = NUMPY_DTYPES[ids.get("dtype", "int32")]

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        fixed = ImageSize(self._latent[0] * VAE_FACTOR, self._latent[1] * VAE_FACTOR)
        image = ImageSize.square(image) if isinstance(image, int) else image
        if image is not None and image != fixed:
            raise UserError(f"expected image size {fixed} (the packages' fixed size in "
                            f"{self.folder.path / MANIFEST}), got {image}")
        return self._latent

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = [self.folder.run("text_encoder", {"input_ids": row[None].numpy().astype(self._ids_dtype)})["last_hidden_state"]
                for row in input_ids]  # the package takes one prompt at a time
        return torch.from_numpy(np.concatenate(rows, axis=0))

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        out = self.folder.run("unet", {"sample": _np(sample), "timestep": _np(timestep),
                                       "encoder_hidden_states": _np(context)})
        return torch.from_numpy(out["noise_pred"])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.folder.run("decoder", {"z": _np(z)})["image"])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


@dataclass
class PackagePipeline:
    """A converted folder with everything `generate_image` needs; `generate` mirrors Pipeline's."""

    folder: ConvertedFolder
    backend: PackageBackend
    tokenizer: object
    scheduler: SchedulerConfig
    defaults: PipelineDefaults
    timesteps: list[int]

    @property
    def source(self) -> str:
        return str(self.folder.path)

    def generate(self, prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                 image_size: ImageSize | int | None = None, on_step: StepCallback | None = None) -> np.ndarray:
        return generate_image(self.backend, self.tokenizer, self.scheduler, self.defaults, prompt, steps,
                              guidance_scale, seed, image_size, on_step, self.timesteps)


def load_package_pipeline(out: Path | str, precision: str = "fp16") -> PackagePipeline:
    """The converted folder `out` as a pipeline run by the interpreter in `precision`."""
    folder = ConvertedFolder(out, precision)
    manifest, where = folder.manifest, str(folder.path / MANIFEST)
    try:
        schedule, sampler, latent = manifest["noise_schedule"], manifest["sampler"], manifest["latent"]
        scheduler = SchedulerConfig.from_dict(
            {**schedule, "prediction_type": manifest["prediction_type"],
             "timestep_spacing": sampler.get("timestep_spacing", "trailing"),
             "steps_offset": sampler.get("steps_offset", 0)}, where)
        timesteps = [int(t) for t in sampler["timesteps"]]
        defaults = PipelineDefaults(steps=len(timesteps),
                                    guidance_scale=float(manifest.get("guidance", {}).get("default_scale", 7.5)),
                                    latent_scale_factor=float(latent["scale_factor"]),
                                    image_size=int(latent["height"]) * VAE_FACTOR)
    except (KeyError, TypeError, ValueError) as exc:
        raise expected("noise_schedule, sampler.timesteps and latent.scale_factor", f"a missing or bad entry ({exc})",
                       where) from None
    if not timesteps or sorted(timesteps, reverse=True) != timesteps:
        raise expected("sampler.timesteps in decreasing order", repr(timesteps), where)
    return PackagePipeline(folder, PackageBackend(folder), folder_tokenizer(folder), scheduler, defaults, timesteps)


def folder_tokenizer(folder: ConvertedFolder):
    """OUT's CLIP tokenizer, padding with pipeline.json's tokenizer.pad_token_id."""
    tokenizer = load_tokenizer(folder.path)
    spec = folder.manifest.get("tokenizer") or {}
    pad_id = spec.get("pad_token_id")
    if pad_id is not None and int(pad_id) != tokenizer.pad_token_id:
        token = tokenizer.convert_ids_to_tokens(int(pad_id))
        if token is None or token == tokenizer.unk_token and int(pad_id) != tokenizer.unk_token_id:
            raise expected(f"tokenizer.pad_token_id in the vocabulary of {folder.path / 'vocab.json'}", str(pad_id),
                           str(folder.path / MANIFEST))
        tokenizer.pad_token = token
    return tokenizer
