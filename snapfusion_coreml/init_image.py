"""The start image of image to image (`generate --init-image PNG`), read and fitted to the
generation's size as docs/contracts.md (image to image) says, so the Swift app prepares the same
pixels:

  1. any PIL mode converted to RGB (palette, grayscale, CMYK, ...; alpha dropped, not composited);
  2. center-cropped to the target aspect ratio: a wider image keeps the middle
     crop_w = floor(H * tw / th) columns from left = floor((W - crop_w) / 2), a taller one the
     middle crop_h = floor(W * th / tw) rows from top = floor((H - crop_h) / 2);
  3. resized to (tw, th) with Lanczos only when the crop's size differs;
  4. pixels x in 0..255 -> x / 127.5 - 1 (diffusers' VaeImageProcessor: 2 * x / 255 - 1).

Bad files are one UserError line: missing, not a file, empty, not an image or unreadable
(truncated, a zero width or height), more than MAX_PIXELS pixels (or PIL's decompression-bomb
limit).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import UserError
from .image_size import ImageSize

MAX_PIXELS = 50_000_000  # 50 megapixels: far above any generation size, below PIL's bomb limit


def open_init_image(path: str | Path):
    """The file at `path` as a fully decoded RGB PIL image, or one UserError line."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise UserError(f"init image not found: {path}")
    if not path.is_file():
        raise UserError(f"expected --init-image to be an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"expected an image file for --init-image, got an empty file (in {path})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise UserError(f"expected an init image of at least 1x1 pixels, got {width}x{height} (in {path})")
                if width * height > MAX_PIXELS:
                    raise UserError(f"expected an init image of at most {MAX_PIXELS // 1_000_000} megapixels, "
                                    f"got {width}x{height} (in {path})")
                image.load()  # decode now: a truncated file fails here, not later
                return image.convert("RGB")
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"expected an init image of at most {MAX_PIXELS // 1_000_000} megapixels, "
                        f"got one PIL refuses as a decompression bomb (in {path})") from None
    except Image.UnidentifiedImageError:
        raise UserError(f"expected an image file for --init-image (PNG, JPEG, ...), got a file PIL cannot identify (in {path})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data; SyntaxError: PIL's malformed-header signal
        raise UserError(f"expected a readable image for --init-image, got a damaged one: {' '.join(str(exc).split())} "
                        f"(in {path})") from None


def fit_init_image(image, size: ImageSize):
    """`image` (a PIL image) as RGB, center-cropped to size's aspect ratio and resized (Lanczos)
    to size.width x size.height when it differs."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    tw, th = size.width, size.height
    if width * th > height * tw:  # wider than the target: keep the middle columns
        crop_w = height * tw // th
        left = (width - crop_w) // 2
        box = (left, 0, left + crop_w, height)
    else:  # taller (or the same ratio): keep the middle rows
        crop_h = width * th // tw
        top = (height - crop_h) // 2
        box = (0, top, width, top + crop_h)
    if box != (0, 0, width, height):
        image = image.crop(box)
    if image.size != (tw, th):
        image = image.resize((tw, th), Image.LANCZOS)
    return image


def init_image_tensor(image, size: ImageSize):
    """(1, 3, H, W) float32 torch tensor in [-1, 1] of `image` fitted to `size`."""
    import torch

    pixels = np.asarray(fit_init_image(image, size), dtype=np.float32)  # (H, W, 3) in 0..255
    return torch.from_numpy(pixels / np.float32(127.5) - np.float32(1.0)).permute(2, 0, 1).unsqueeze(0).contiguous()
