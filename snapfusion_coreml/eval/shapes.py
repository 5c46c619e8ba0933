"""A procedural text-image data set: one filled shape of one color on a plain background.

Captions read "a red circle on a blue background" ("an orange ..." before a vowel). Every image is
a pure function of (seed, index): the data set is infinite, needs no files, and a held-out seed
gives scenes never seen in training. It is what the bundled default model is trained on, and what
its attribute classifier judges (`parse_prompt` recovers the attributes of a caption).

Guarantees (tested): shape color != background color; every pixel of a region is its named color
jittered by at most JITTER per channel; the shape (circle, axis-aligned square, upright triangle)
spans MIN_SIDE..MAX_SIDE of the image side and lies fully inside it. Edges are hard (no
anti-aliasing), so each pixel belongs to exactly one region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (0xFF, 0x00, 0x00),
    "green": (0x00, 0x80, 0x00),
    "blue": (0x00, 0x00, 0xFF),
    "yellow": (0xFF, 0xFF, 0x00),
    "purple": (0x80, 0x00, 0x80),
    "orange": (0xFF, 0xA5, 0x00),
    "white": (0xFF, 0xFF, 0xFF),
    "black": (0x00, 0x00, 0x00),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

JITTER = 10  # max per-channel deviation from the named color
MIN_SIDE, MAX_SIDE = 0.3, 0.7  # shape side (circle diameter, triangle base = height) / image side


@dataclass(frozen=True)
class Scene:
    """One image: names, plus geometry in fractions of the image side and per-region color jitter."""

    shape: str
    color: str
    background: str
    side: float  # in [MIN_SIDE, MAX_SIDE]
    center_x: float  # bounding-box centre, side / 2 <= center <= 1 - side / 2
    center_y: float
    color_jitter: tuple[int, int, int] = (0, 0, 0)  # each in [-JITTER, JITTER]
    background_jitter: tuple[int, int, int] = (0, 0, 0)

    def caption(self) -> str:
        return f"{_article(self.color)} {self.color} {self.shape} on {_article(self.background)} {self.background} background"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def scene(seed: int, index: int) -> Scene:
    """The index-th scene of the data set `seed` (any index >= 0; independent of every other index)."""
    if index < 0 or seed < 0:
        raise ValueError(f"expected a seed and index >= 0, got seed {seed}, index {index}")
    rng = np.random.default_rng([seed, index])
    names = list(COLORS)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    color = names[int(rng.integers(len(names)))]
    others = [n for n in names if n != color]
    background = others[int(rng.integers(len(others)))]
    side = float(rng.uniform(MIN_SIDE, MAX_SIDE))
    center_x, center_y = (float(rng.uniform(side / 2, 1 - side / 2)) for _ in range(2))
    jitter = rng.integers(-JITTER, JITTER + 1, size=(2, 3))
    return Scene(shape, color, background, side, center_x, center_y,
                 tuple(int(v) for v in jitter[0]), tuple(int(v) for v in jitter[1]))


def shape_mask(scene: Scene, size: int) -> np.ndarray:
    """(size, size) bool: pixels whose centre lies inside the shape."""
    # the box is snapped to whole pixels so it never leaves the image and its side is exact
    side = max(1, round(scene.side * size))
    left = min(max(0, round(scene.center_x * size - side / 2)), size - side)
    top = min(max(0, round(scene.center_y * size - side / 2)), size - side)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    u, v = (xs - left) / side, (ys - top) / side  # [0, 1] inside the bounding box
    inside_box = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if scene.shape == "square":
        return inside_box
    if scene.shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if scene.shape == "triangle":  # apex at the top centre, base along the bottom edge
        return inside_box & (np.abs(u - 0.5) <= v / 2)
    raise ValueError(f"expected a shape in {SHAPES}, got {scene.shape!r}")


def _jittered(name: str, jitter: tuple[int, int, int]) -> np.ndarray:
    return np.clip(np.array(COLORS[name]) + np.array(jitter), 0, 255).astype(np.uint8)


def render(scene: Scene, size: int = 128) -> np.ndarray:
    """(size, size, 3) uint8 RGB image of `scene`."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = _jittered(scene.background, scene.background_jitter)
    image[shape_mask(scene, size)] = _jittered(scene.color, scene.color_jitter)
    return image


_COLOR = "|".join(COLORS)
_PROMPT = re.compile(rf"^\s*an?\s+({_COLOR})\s+({'|'.join(SHAPES)})\s+on\s+an?\s+({_COLOR})\s+background\s*\.?\s*$",
                     re.IGNORECASE)


def parse_prompt(text: str) -> dict[str, str] | None:
    """{"shape", "color", "background"} of a caption of this data set's form, else None."""
    match = _PROMPT.match(text)
    if match is None:
        return None
    color, shape, background = (g.lower() for g in match.groups())
    return {"shape": shape, "color": color, "background": background}


def parse_spec(text: str) -> int | None:
    """The seed of a `--data shapes[:SEED]` spec (default 0), or None when `text` is not one."""
    match = re.fullmatch(r"shapes(?::(\d+))?", text.strip())
    return None if match is None else int(match.group(1) or 0)
