"""pipeline.json: everything the Swift side needs and nothing it must guess (docs/contracts.md)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..errors import UserError
from ..image_size import VAE_FACTOR
from ..schedule import FINAL_ALPHA_CUMPROD, timesteps
from .options import ConvertOptions

FORMAT_VERSION = 1
MANIFEST = "pipeline.json"


def build_manifest(source, options: ConvertOptions, latent: tuple[int, int], results: list, inputs: dict) -> dict[str, Any]:
    """pipeline.json of a conversion. source: the opened model (convert.pipeline.open_model:
    layout, scheduler, defaults, tokenizer, source, loras); latent: (height, width)."""
    from ..modeling.unet import unet_parameters

    sched, defaults, layout = source.scheduler, source.defaults, source.layout
    tok = source.tokenizer
    height, width = latent
    components = {}
    for result in results:
        components[result.key] = {
            "file": result.files[0] if len(result.files) == 1 else None,
            "chunks": result.files if len(result.files) > 1 else None,
            "sha256": result.sha256,
            "precision": "float16",
            "deployment_target": options.target,
            "attention": options.attention.value if result.key == "unet" else None,
            "compression": result.compression,
            "inputs": [t.to_dict() for t in inputs[result.key]],
            "outputs": result.outputs,
            "size_bytes": result.size_bytes,
        }
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "snapfusion-coreml", "version": __version__},
        "source": {"model": source.source, "unet_layout": layout.name, "unet_parameters": unet_parameters(layout),
                   **_base(options), "loras": [lora.record() for lora in source.loras]},
        "prediction_type": sched.prediction_type,
        "image": {"height": height * VAE_FACTOR, "width": width * VAE_FACTOR},
        "latent": {"channels": layout.in_channels, "height": height, "width": width,
                   "scale_factor": defaults.latent_scale_factor},
        "noise_schedule": {"num_train_timesteps": sched.num_train_timesteps, "beta_start": sched.beta_start,
                           "beta_end": sched.beta_end, "beta_schedule": sched.beta_schedule},
        "sampler": {"name": "ddim", "eta": 0.0, "timestep_spacing": sched.timestep_spacing,
                    "steps_offset": sched.steps_offset, "default_steps": defaults.steps,
                    "timesteps": timesteps(sched, defaults.steps), "final_alpha_cumprod": FINAL_ALPHA_CUMPROD},
        "guidance": {"default_scale": defaults.guidance_scale, "unet_batch": options.unet_batch},
        "tokenizer": {"vocab": "vocab.json", "merges": "merges.txt", "max_length": 77,
                      "bos_token_id": int(tok.bos_token_id), "eos_token_id": int(tok.eos_token_id),
                      "pad_token_id": int(tok.pad_token_id)},
        "components": components,
    }


def _base(options: ConvertOptions) -> dict[str, str]:
    """source.base: the architecture a single-file checkpoint was read with (absent otherwise)."""
    if not options.base:
        return {}
    from ..modeling.single_file import base_label

    return {"base": base_label(options.base)}


def check_manifest(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate the parts of a pipeline.json that readers rely on."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"expected pipeline.json format_version {FORMAT_VERSION}, got {version!r} (in {source})")
    for key in ("prediction_type", "sampler", "components", "latent"):
        if key not in data:
            raise UserError(f"expected key {key!r} in pipeline.json, found none (in {source})")
    return data
