"""The attribute judge: a small CNN that names the shape, shape color and background color of a
shapes-domain image (snapfusion_coreml/eval/shapes.py). It plays CLIP's role for the bundled
demo domain: its accuracy on generated images is our "CLIP score", and the Frechet distance of
its penultimate features between generated and real data set images is our "FID".

    judge = Judge.load("models/judge")
    judge.predict(images)   # images (N, H, W, 3) uint8 -> [{"shape", "color", "background"}, ...]
    judge.features(images)  # (N, feature_dim) float32

Images of any size are resized to `input_size` (antialiased bilinear), so 128 px data set renders
and 256 px generated images are judged alike.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError, expected
from ..json_fields import JsonFields, read_json
from .shapes import COLORS, SHAPES

CONFIG_FILE = "judge.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "snapfusion-judge"

ATTRIBUTES = ("shape", "color", "background")


@dataclass(frozen=True)
class JudgeConfig:
    input_size: int = 32  # images are resized to input_size x input_size
    widths: tuple[int, ...] = (16, 32, 32)  # conv stage widths; each stage (conv, batch norm, ReLU, 2x2 max pool) halves the side
    feature_dim: int = 64  # penultimate features (the Frechet distance space)
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(COLORS)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "JudgeConfig":
        """Every value checked: a judge config that builds no network is one error line."""
        fields = JsonFields(data, "config", source)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise expected(f"judge config keys from {sorted(names)}", f"{unknown}", source)
        default = cls()
        widths = fields.integers("widths", minimum=1, default=default.widths)
        if not widths:
            raise fields.fail("widths", "a non-empty list of integers >= 1", [])
        # each stage halves the side: at least one pixel must be left after the last
        input_size = fields.integer("input_size", minimum=2 ** len(widths), default=default.input_size)
        values = {"input_size": input_size, "widths": widths,
                  "feature_dim": fields.integer("feature_dim", minimum=1, default=default.feature_dim)}
        for key in ("shapes", "colors"):
            names_list = fields.strings(key, default=getattr(default, key))
            if len(names_list) < 1 or len(set(names_list)) != len(names_list):
                raise fields.fail(key, "a non-empty list of distinct names", list(names_list))
            values[key] = names_list
        return cls(**values)

    def classes(self, attribute: str) -> tuple[str, ...]:
        return self.shapes if attribute == "shape" else self.colors


class Judge(nn.Module):
    """images (N, 3, S, S) in [-1, 1] -> features (N, F) and logits per attribute."""

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        self.config = config
        layers, cin = [], 3
        for width in config.widths:
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            cin = width
        layers += [nn.Conv2d(cin, cin, 3, padding=1, bias=False), nn.BatchNorm2d(cin), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        # global average and max pooling: shapes anywhere in the image look alike, and the average
        # says how much of each color there is (the background is usually the larger region)
        self.embed = nn.Linear(2 * cin, config.feature_dim)
        self.heads = nn.ModuleDict({a: nn.Linear(config.feature_dim, len(config.classes(a))) for a in ATTRIBUTES})

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # 1. convolutional body: (N, 3, S, S) -> (N, C, S / 2^stages, S / 2^stages)
        h = self.body(images)
        # 2. features (N, F) from the pooled (N, 2C)
        features = F.relu(self.embed(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)))
        # 3. one linear head per attribute
        return features, {a: head(features) for a, head in self.heads.items()}

    def prepare(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, S, S) float in [-1, 1] at the judge's input size."""
        x = torch.as_tensor(np.asarray(images))
        if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise expected("images (N, H, W, 3) uint8", f"{tuple(x.shape)} {x.dtype}")
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        size = self.config.input_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x

    @torch.no_grad()
    def features(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, feature_dim) float32 features of uint8 images (N, H, W, 3)."""
        self.eval()
        return np.concatenate([self(self.prepare(images[i:i + batch]))[0].numpy() for i in range(0, len(images), batch)])

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch: int = 256) -> list[dict[str, str]]:
        """The attributes the judge sees in each uint8 image (N, H, W, 3)."""
        self.eval()
        out: list[dict[str, str]] = []
        for i in range(0, len(images), batch):
            _, logits = self(self.prepare(images[i:i + batch]))
            picks = {a: logits[a].argmax(dim=1).tolist() for a in ATTRIBUTES}
            out += [{a: self.config.classes(a)[picks[a][j]] for a in ATTRIBUTES} for j in range(len(picks["shape"]))]
        return out

    def save(self, out: Path, metadata: dict) -> None:
        """judge.json (config + `metadata`: how it was trained, its accuracy) and model.safetensors."""
        from safetensors.torch import save_file

        out = Path(out)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(out / WEIGHTS_FILE))
        (out / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "version": 1, "config": self.config.to_dict(),
                                                   **metadata}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path | str) -> "Judge":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path = folder / CONFIG_FILE
        meta = read_json(meta_path, f"a judge config ({CONFIG_FILE}, written by `eval train-judge`)")
        if meta.get("format") != FORMAT or meta.get("version") != 1:
            raise expected(f"format {FORMAT!r} version 1", f"{meta.get('format')!r} version {meta.get('version')!r}", str(meta_path))
        judge = cls(JudgeConfig.from_dict(meta.get("config", {}), str(meta_path)))
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise UserError(f"expected judge weights {WEIGHTS_FILE} in {folder}, found none")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise expected("a safetensors file", f"an unreadable one ({exc})", str(weights)) from None
        own = judge.state_dict()
        if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
            bad = sorted(k for k in own if k not in state or state[k].shape != own[k].shape) or sorted(set(state) - set(own))
            raise expected(f"judge weights matching {CONFIG_FILE}", f"missing or reshaped {bad[:3]}", str(weights))
        judge.load_state_dict(state)
        judge.metadata = meta
        return judge.eval()


def attribute_accuracy(predicted: list[dict[str, str]], wanted: list[dict[str, str]]) -> dict[str, float]:
    """Fraction right per attribute, their mean ("attributes") and all three right ("all")."""
    if len(predicted) != len(wanted) or not wanted:
        raise ValueError(f"expected as many predictions as targets (> 0), got {len(predicted)} and {len(wanted)}")
    result = {a: float(np.mean([p[a] == w[a] for p, w in zip(predicted, wanted)])) for a in ATTRIBUTES}
    result["attributes"] = float(np.mean([result[a] for a in ATTRIBUTES]))
    result["all"] = float(np.mean([all(p[a] == w[a] for a in ATTRIBUTES) for p, w in zip(predicted, wanted)]))
    return result
