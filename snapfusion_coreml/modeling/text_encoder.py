"""The CLIP text encoder: transformers' CLIPTextModel, any size, eager attention for tracing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..io import read_json
from .checkpoint import find_weights, read_state_dict


def build_text_encoder(config: dict[str, Any]):
    """A CLIPTextModel from a config dict (transformers' CLIPTextConfig keys)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"})
    cfg._attn_implementation = "eager"  # plain matmul/softmax: traces and converts everywhere
    return CLIPTextModel(cfg).eval()


def load_text_encoder(directory: Path, allow_pickle: bool = False):
    config = read_json(directory / "config.json", "the text encoder config")
    model = build_text_encoder(config)
    weights = find_weights(directory, allow_pickle)
    state = read_state_dict(weights, allow_pickle)
    state.pop("text_model.embeddings.position_ids", None)  # a buffer older checkpoints carry
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        first = (missing or result.unexpected_keys)[0]
        raise UserError(f"text encoder weights do not fit its config: {len(missing)} missing, "
                        f"{len(result.unexpected_keys)} unexpected tensors (first: {first}) (in {weights})")
    return model


def text_encoder_config(model) -> dict[str, Any]:
    return {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}


class TextEncoderExport(nn.Module):
    """input_ids (1, 77) int -> last_hidden_state (1, 77, D), pooled_outputs (1, D)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids.long(), return_dict=True)
        return out.last_hidden_state, out.pooler_output
