"""Image quality measures: CLIP score and Frechet distances, with user-supplied weights only.

- CLIP score: the raw cosine between CLIP image and text embeddings, averaged (SnapFusion's and
  BK-SDM's convention, ~0.30 for SD-v1.5 with ViT-g/14; not torchmetrics' max(100 cos, 0)). The
  model is either an open_clip checkpoint file (`--clip FILE --clip-model ViT-g-14`, needs
  open_clip, `pip install 'snapfusion-coreml[clip]'`) or a local transformers CLIP folder
  (`--clip DIR` with config.json; e.g. openai/clip-vit-large-patch14 saved locally).
- Frechet distance: torchmetrics' FrechetInceptionDistance (float64 statistics) over a feature
  network: the Inception network of FID (`--inception FILE`: the TorchScript
  `inception-2015-12-05.pt` that StyleGAN2-ADA and clean-fid use, called as
  net(uint8 images, return_features=True) -> (N, 2048); or a torch-fidelity state dict, which
  needs torch-fidelity), or the attribute judge's features for the shapes domain.
Nothing is downloaded: a missing file is a UserError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError, expected

# -- CLIP score ---------------------------------------------------------------------------------

class CLIPScore:
    """score(images (N, H, W, 3) uint8, prompts) -> per-image raw cosine (N,)."""

    def __init__(self, weights: Path | str, model_name: str = "ViT-g-14"):
        weights = Path(weights)
        if weights.is_dir():
            self._init_transformers(weights)
        elif weights.is_file():
            self._init_open_clip(weights, model_name)
        else:
            raise UserError(f"expected local CLIP weights (an open_clip checkpoint file or a transformers CLIP folder), "
                            f"got nothing at {weights}")
        self.source = str(weights)

    def _init_transformers(self, folder: Path) -> None:
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        if not (folder / "config.json").is_file():
            raise UserError(f"expected a transformers CLIP folder with config.json, found none (in {folder})")
        try:
            self.model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"expected a transformers CLIP folder (model, tokenizer, preprocessor), got: "
                            f"{' '.join(str(exc).split())[:300]} (in {folder})") from None
        self.kind = "transformers"

    def _init_open_clip(self, weights: Path, model_name: str) -> None:
        try:
            import open_clip
        except Exception as exc:  # ImportError, or torchvision failing to load its C ops
            raise UserError(f"expected open_clip for CLIP checkpoint {weights} (pip install 'snapfusion-coreml[clip]' "
                            f"with a torchvision matching torch), got: {' '.join(str(exc).split())[:200]}") from None
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(weights))
        self.model, self.preprocess = model.eval(), preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.kind = "open_clip"

    @torch.no_grad()
    def embeddings(self, images: np.ndarray, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm image (N, E) and text (N, E) embeddings."""
        from PIL import Image

        pil = [Image.fromarray(im) for im in images]
        if self.kind == "transformers":
            pixels = self.processor(images=pil, return_tensors="pt")["pixel_values"]
            tokens = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
            image = self.model.get_image_features(pixel_values=pixels)
            text = self.model.get_text_features(**tokens)
            image = getattr(image, "pooler_output", image)  # transformers 5 may return an output object
            text = getattr(text, "pooler_output", text)
        else:
            image = self.model.encode_image(torch.stack([self.preprocess(im) for im in pil]))
            text = self.model.encode_text(self.tokenizer(prompts))
        return image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)

    def __call__(self, images: np.ndarray, prompts: list[str], batch: int = 32) -> np.ndarray:
        if len(images) != len(prompts):
            raise ValueError(f"expected one prompt per image, got {len(images)} images and {len(prompts)} prompts")
        scores = []
        for i in range(0, len(prompts), batch):
            image, text = self.embeddings(images[i:i + batch], prompts[i:i + batch])
            scores.append((image * text).sum(dim=-1).numpy())
        return np.concatenate(scores).astype(np.float64)


# -- Frechet distance ---------------------------------------------------------------------------

class TorchScriptInception(nn.Module):
    """The FID Inception network as a TorchScript file: uint8 (N, 3, H, W) -> (N, 2048) features."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as exc:
            raise expected("a TorchScript Inception network (inception-2015-12-05.pt)",
                           f"an unloadable file ({' '.join(str(exc).split())[:150]})", str(path)) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, return_features=True)


def inception_features(path: Path | str) -> nn.Module | tuple[int, str]:
    """The FID feature network for `path`: a TorchScript module, or (2048, path) for torchmetrics'
    own torch-fidelity Inception loading a state dict from `path`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"expected the FID Inception weights file (--inception), got nothing at {path}")
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                return TorchScriptInception(path)
    return (2048, str(path))


class FeatureDistance:
    """Frechet distance between the features of two image sets (torchmetrics' FID machinery).

    feature: an nn.Module mapping uint8 (N, 3, H, W) to (N, F), or (2048, weights path) for
    torchmetrics' torch-fidelity Inception.
    """

    def __init__(self, feature: nn.Module | tuple[int, str]):
        from torchmetrics.image.fid import FrechetInceptionDistance

        try:
            if isinstance(feature, tuple):
                self.metric = FrechetInceptionDistance(feature=feature[0], feature_extractor_weights_path=feature[1],
                                                       reset_real_features=False)
            else:
                self.metric = FrechetInceptionDistance(feature=feature, reset_real_features=False)
        except ModuleNotFoundError as exc:
            raise UserError(f"expected torch-fidelity for a state-dict Inception ({feature[1]}); or pass the TorchScript "
                            f"inception-2015-12-05.pt, which needs nothing else: {exc}") from None
        self.metric.eval()

    def set_reference(self, images: np.ndarray, batch: int = 64) -> None:
        """The real images, (N, H, W, 3) uint8; kept across `distance` calls."""
        self._update(images, real=True, batch=batch)

    def distance(self, images: np.ndarray, batch: int = 64) -> float:
        """FD between `images` (N, H, W, 3) uint8 and the reference set."""
        self.reset()
        self.add(images, batch)
        return self.compute()

    def reset(self) -> None:
        """Forget the generated images (the reference is kept: reset_real_features=False)."""
        self.metric.reset()

    def add(self, images: np.ndarray, batch: int = 64) -> None:
        """Accumulate generated images (N, H, W, 3) uint8, a few at a time if need be."""
        self._update(images, real=False, batch=batch)

    def compute(self) -> float:
        """FD between the images added since `reset` and the reference."""
        return float(self.metric.compute())

    @torch.no_grad()
    def _update(self, images: np.ndarray, real: bool, batch: int) -> None:
        if real and len(images) < 2:
            raise UserError(f"expected at least 2 reference images for a Frechet distance, got {len(images)}")
        for i in range(0, len(images), batch):
            self.metric.update(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2), real=real)


class JudgeFeatures(nn.Module):
    """The judge's features as a FID feature network: uint8 (N, 3, H, W) -> (N, feature_dim)."""

    def __init__(self, judge: nn.Module):
        super().__init__()
        self.judge = judge
        self.num_features = judge.config.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge(self.judge.prepare(images.permute(0, 2, 3, 1)))[0]
