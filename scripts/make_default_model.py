"""Write the bundled default model (models/default): a small SnapFusion-layout pipeline.

Deterministic: seeded random weights (seed 0), stored as fp16 safetensors in this project's
folder format, with the real CLIP tokenizer (models/tokenizer). Its UNet is models/layouts/
snapfusion-small.json, its decoder SnapFusion's 0.5-width slim decoder of a quarter-width VAE,
its text encoder a 2-layer 64-wide CLIP text tower. Replace it with trained weights by saving
any pipeline to models/default in the same format.

    python scripts/make_default_model.py [--out models/default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from snapfusion_coreml.config import DecoderConfig, PipelineDefaults, SchedulerConfig, resolve_layout
from snapfusion_coreml.modeling.factory import CLIP_L14_TEXT, build_pipeline
from snapfusion_coreml.modeling.loading import save_pipeline

SMALL_TEXT = dict(CLIP_L14_TEXT, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  projection_dim=64)
SLIM_DECODER = DecoderConfig(block_out_channels=(32, 64, 128, 128), norm_num_groups=16, width_multiplier=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "default")
    args = parser.parse_args()
    pipeline = build_pipeline(
        resolve_layout("snapfusion-small"), SMALL_TEXT, SLIM_DECODER,
        SchedulerConfig(prediction_type="v_prediction", timestep_spacing="trailing"),
        PipelineDefaults(steps=8, guidance_scale=7.5, image_size=256), seed=0,
    )
    pipeline.source = "snapfusion-small (seeded random weights)"
    save_pipeline(pipeline, args.out, overwrite=True, dtype=torch.float16)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
