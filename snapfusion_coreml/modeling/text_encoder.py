"""The CLIP text encoder: transformers' CLIPTextModel, any size, eager attention for tracing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..errors import UserError
from ..json_fields import read_json
from .checkpoint import find_weights, read_state_dict


def build_text_encoder(config: dict[str, Any]):
    """A CLIPTextModel from a config dict (transformers' CLIPTextConfig keys)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"})
    cfg._attn_implementation = "eager"  # plain matmul/softmax: traces and converts everywhere
    return CLIPTextModel(cfg).eval()


def load_text_encoder(directory: Path, allow_pickle: bool = False):
    """A text_encoder/ folder: config.json + weights in any form transformers has written."""
    config = read_json(directory / "config.json", "the text encoder config")
    model = build_text_encoder(config)
    weights = find_weights(directory, allow_pickle)
    load_text_encoder_state(model, read_state_dict(weights, allow_pickle), str(weights))
    return model


POSITION_IDS = "embeddings.position_ids"  # an int64 buffer transformers 4.x wrote into checkpoints
TEXT_MODEL = "text_model."  # transformers 4.x nests the tower under text_model., 5.x does not


def normalize_text_encoder_keys(state: Mapping[str, torch.Tensor], own_keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """Rename a CLIP text tower's keys to the module's own convention.

    Accepts keys with or without the `text_model.` prefix and drops the `position_ids` buffer
    (its values are always arange(max_positions)); everything else passes through unchanged.
    """
    own = set(own_keys)
    nested = any(k.startswith(TEXT_MODEL) for k in own)
    out = {}
    for key, value in state.items():
        bare = key[len(TEXT_MODEL):] if key.startswith(TEXT_MODEL) else key
        if bare == POSITION_IDS:
            continue
        out[TEXT_MODEL + bare if nested else bare] = value
    return out


def load_text_encoder_state(model, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load CLIP text tower weights (any key convention, any float dtype) into `model`."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    fixed = normalize_text_encoder_keys(state, own)
    missing = sorted(set(own) - set(fixed))
    unexpected = sorted(set(fixed) - set(own))
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise UserError(f"expected text encoder weights that fit its config, got {len(missing)} missing and "
                        f"{len(unexpected)} unexpected tensors (first: {first}) (in {source})")
    mismatched = [k for k in own if tuple(fixed[k].shape) != tuple(own[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise UserError(f"expected text encoder tensor {k} of shape {tuple(own[k].shape)}, got {tuple(fixed[k].shape)} "
                        f"({len(mismatched)} mismatched) (in {source})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in fixed.items()}, strict=False)


def text_encoder_config(model) -> dict[str, Any]:
    return {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}


class TextEncoderExport(nn.Module):
    """input_ids (1, 77) float32 or int token ids -> last_hidden_state (1, 77, D), pooled_outputs (1, D).

    Float ids (the Core ML input, Apple's convention) are exact integers; `.long()` casts them back.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids.long(), return_dict=True)
        return out.last_hidden_state, out.pooler_output
