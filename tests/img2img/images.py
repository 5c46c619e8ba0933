"""Init images for the image-to-image tests: seeded, with structure a VAE can see."""

from __future__ import annotations

import numpy as np


def init_image(width: int = 64, height: int = 64, seed: int = 0):
    """An RGB PIL image: a colour gradient with a bright disc and seeded speckle."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2, 230.0, 40.0)
    pixels = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
