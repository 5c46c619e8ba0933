"""Image sizes: `--image-size 512` (square) or `512x768` (height x width), the latent size a
UNet can take for them, and `convert`'s size lists (`--image-size 512,512x768,768x512`: one
folder whose size-dependent packages hold one function per size, named by `function_name`).

The VAE divides each side by 8; a UNet with L resolution levels halves the latent L - 1 times,
so each latent side must be a multiple of 2**(L - 1) (UNetLayout.latent_divisor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError

VAE_FACTOR = 8  # pixels per latent cell along each side (SD's VAE; pipeline.json's image = 8 x latent)
PATTERN = re.compile(r"^\s*(\d+)\s*(?:[xX\u00d7]\s*(\d+))?\s*$")


@dataclass(frozen=True)
class ImageSize:
    """An image size in pixels, height x width."""

    height: int
    width: int

    @classmethod
    def square(cls, side: int) -> "ImageSize":
        return cls(int(side), int(side))

    @property
    def is_square(self) -> bool:
        return self.height == self.width

    def to_dict(self) -> dict[str, int]:
        """Its pipeline.json form, {"height": H, "width": W} (docs/contracts.md section 2)."""
        return {"height": self.height, "width": self.width}

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


def vae_factor(block_out_channels) -> int:
    """Pixels per latent cell of a VAE with these block widths: every block but the last halves
    the side (SD's four blocks: 8 = VAE_FACTOR)."""
    return 2 ** (len(block_out_channels) - 1)


def parse_image_size(text: str | int | None) -> ImageSize | None:
    """--image-size "512" | "512x768" (H x W) -> ImageSize; None stays None (the model's default).

    Refuses sides <= 0 and anything that is not one or two integers with one line.
    """
    if text is None:
        return None
    match = PATTERN.match(str(text))
    if not match:
        raise UserError(f"expected --image-size SIDE or HEIGHTxWIDTH in pixels (e.g. 512 or 512x768), got {text!r}")
    height = int(match.group(1))
    width = int(match.group(2)) if match.group(2) is not None else height
    if height <= 0 or width <= 0:
        raise UserError(f"expected --image-size sides > 0, got {text!r}")
    return ImageSize(height, width)


def parse_image_sizes(text: str | int | None) -> tuple[ImageSize, ...] | None:
    """convert's --image-size "512,512x768,768x512" -> the sizes in order (the first is the
    default); one size gives a 1-tuple, None stays None. Refuses empty entries and repeated sizes
    in one line."""
    if text is None:
        return None
    entries = str(text).split(",")
    if any(not entry.strip() for entry in entries):
        raise UserError(f"expected --image-size SIZE[,SIZE...] (e.g. 512,512x768,768x512), got {text!r}")
    sizes = tuple(parse_image_size(entry) for entry in entries)
    repeated = sorted({str(size) for size in sizes if sizes.count(size) > 1})
    if repeated:
        raise UserError(f"expected distinct --image-size sizes, got {', '.join(repeated)} more than once in {text!r}")
    return sizes  # type: ignore[return-value]


def function_name(image: ImageSize) -> str:
    """The multifunction package function of one size: `image_{H}x{W}`, height first."""
    return f"image_{image.height}x{image.width}"


def latent_size(image: ImageSize, latent_divisor: int, num_levels: int) -> tuple[int, int]:
    """(latent height, latent width) for `image`, or one clear error when the UNet cannot take it."""
    step = VAE_FACTOR * latent_divisor
    bad = [side for side in (image.height, image.width) if side <= 0 or side % step]
    if bad:
        raise UserError(f"expected an image size whose sides are positive multiples of {step} for this UNet "
                        f"({num_levels} resolution levels: each latent side a multiple of {latent_divisor}), got {image}")
    return image.height // VAE_FACTOR, image.width // VAE_FACTOR
