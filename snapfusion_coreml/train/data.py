"""Training data: image-text folders and prompt-list files, batched deterministically.

Sources (`load_examples`):
  - an image-text folder: every image (png/jpg/jpeg/webp) or precomputed latent (`.npy`, (4, h, w),
    already multiplied by the latent scale factor) has a caption in a same-name `.txt` file;
  - a prompt-list file: one prompt per line (blank lines and lines starting with "#" skipped);
    training is then data-free: latents come from sampling the teacher (see train/common.py);
  - `shapes` or `shapes:SEED`: the procedural shapes data set (snapfusion_coreml/eval/shapes.py), endless, rendered
    on the fly at the model's image size (unless a file or folder of that name exists).

Determinism: which examples form a micro-batch and which captions are dropped are pure functions
of (seed, micro-step, process index). Nothing depends on iteration history, so a resumed run sees
exactly the batches the uninterrupted run would have seen, and `accelerate launch` on N
processes splits every global batch into N disjoint slices with no sampler state to save.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..eval import shapes
from ..io import IMAGE_SUFFIXES

LATENT_SUFFIX = ".npy"

# streams of per-step randomness; each purpose gets its own so adding one never shifts another
STREAM_ORDER, STREAM_DROPOUT, STREAM_NOISE, STREAM_TIMESTEP, STREAM_GUIDANCE, STREAM_SKIP, STREAM_TEACHER = range(7)


@dataclass(frozen=True)
class Example:
    caption: str
    image: Path | None = None  # an image file to encode with a VAE encoder
    latent: Path | None = None  # a precomputed latent
    scene: shapes.Scene | None = None  # a procedural scene, rendered at the training image size


class ShapesExamples:
    """The shapes data set as an endless sequence of examples: example i is shapes.scene(seed, i)."""

    endless = True

    def __init__(self, seed: int):
        self.seed = seed

    def __getitem__(self, index: int) -> Example:
        s = shapes.scene(self.seed, index)
        return Example(s.caption(), scene=s)

    def __iter__(self) -> Iterator[Example]:
        return (self[i] for i in itertools.count())

    def head(self, n: int) -> list[Example]:
        return [self[i] for i in range(n)]


@dataclass(frozen=True)
class Batch:
    captions: list[str]  # after caption dropout ("" = the unconditional embedding)
    images: torch.Tensor | None  # (B, 3, S, S) in [-1, 1]
    latents: torch.Tensor | None  # (B, 4, h, w), scaled by the latent scale factor


def step_generator(seed: int, micro_step: int, rank: int, stream: int) -> torch.Generator:
    """A CPU generator for one purpose at one micro-step on one process (no shared RNG state)."""
    state = np.random.SeedSequence([seed, micro_step, rank, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator("cpu").manual_seed(int(state[0] % (2**63)))


def draw_for_batch(draw: Callable[[torch.Generator, int], torch.Tensor], batch: int, seed: int, micro_step: int,
                   rank: int, world_size: int, stream: int) -> torch.Tensor:
    """This process's slice of `draw(generator, n)` over the whole global batch (n = batch * world_size).

    Every process draws from the same generator and keeps its own rows, so a sample's noise,
    timestep or dropout depends on its position in the global batch, not on how many processes
    share that batch: N processes train exactly as one process with the same global batch. With
    world_size 1 this is draw(step_generator(seed, micro_step, rank, stream), batch).
    """
    g = step_generator(seed, micro_step, rank if world_size == 1 else 0, stream)
    values = draw(g, batch * world_size)
    return values if world_size == 1 else values[rank * batch:(rank + 1) * batch]


def load_examples(path: Path | str) -> list[Example] | ShapesExamples:
    """Examples of an image-text folder, a prompt-list file or `shapes[:SEED]` (see the module docstring)."""
    path = Path(path)
    if not path.exists() and (seed := shapes.parse_spec(str(path))) is not None:
        return ShapesExamples(seed)
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"expected a UTF-8 prompt list (one prompt per line), got binary data (in {path})") from None
        prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not prompts:
            raise UserError(f"expected at least one prompt (one per line), got none (in {path})")
        return [Example(p) for p in prompts]
    if not path.is_dir():
        raise UserError(f"training data not found: {path} (expected an image-text folder, a prompt-list file "
                        f"or shapes[:SEED])")
    examples = []
    for file in sorted(path.iterdir()):
        suffix = file.suffix.lower()
        if suffix not in IMAGE_SUFFIXES + (LATENT_SUFFIX,):
            continue
        caption = file.with_suffix(".txt")
        if not caption.is_file():
            raise UserError(f"expected a caption file {caption.name} beside {file.name}, got none (in {path})")
        try:
            text = caption.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise UserError(f"expected a UTF-8 caption, got bytes that are not UTF-8 (in {caption})") from None
        examples.append(Example(text, image=file if suffix != LATENT_SUFFIX else None,
                                latent=file if suffix == LATENT_SUFFIX else None))
    if not examples:
        raise UserError(f"expected image files ({', '.join(IMAGE_SUFFIXES)}) or {LATENT_SUFFIX} latents with same-name "
                        f".txt captions, got none (in {path})")
    kinds = {e.image is None for e in examples}
    if len(kinds) > 1:
        raise UserError(f"expected only images or only {LATENT_SUFFIX} latents, got both (in {path})")
    return examples


class DataStream:
    """An endless, seeded stream of micro-batches over `examples`.

    Global position p (micro-batch m of size B on process r of W: p = (m * W + r) * B + i) reads
    example perm_e[p mod n] with e = p div n, where perm_e is a permutation seeded by (seed, e).
    An endless source (ShapesExamples) reads example p itself.
    """

    def __init__(self, examples: list[Example] | ShapesExamples, batch_size: int, seed: int, caption_dropout: float = 0.0,
                 image_size: int = 512, rank: int = 0, world_size: int = 1):
        self.endless = getattr(examples, "endless", False)
        if not self.endless and not examples:
            raise UserError("expected at least one training example, got none")
        if not 0.0 <= caption_dropout <= 1.0:
            raise UserError(f"expected a caption dropout in [0, 1], got {caption_dropout}")
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.caption_dropout, self.image_size = caption_dropout, image_size
        self.rank, self.world_size = rank, world_size
        self._perms: dict[int, list[int]] = {}

    @property
    def has_pixels(self) -> bool:
        return self.examples[0].image is not None or self.examples[0].scene is not None

    @property
    def has_latents(self) -> bool:
        return self.examples[0].latent is not None

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator("cpu").manual_seed(self.seed * 100_003 + epoch)
            self._perms = {epoch: torch.randperm(len(self.examples), generator=g).tolist()}  # keep one epoch cached
        return self._perms[epoch]

    def indices(self, micro_step: int) -> list[int]:
        b = self.batch_size
        start = (micro_step * self.world_size + self.rank) * b
        if self.endless:
            return list(range(start, start + b))
        n = len(self.examples)
        return [self._perm(p // n)[p % n] for p in range(start, start + b)]

    def batch(self, micro_step: int) -> Batch:
        chosen = [self.examples[i] for i in self.indices(micro_step)]
        drop = draw_for_batch(lambda g, n: torch.rand(n, generator=g), len(chosen), self.seed, micro_step, self.rank,
                              self.world_size, STREAM_DROPOUT) < self.caption_dropout
        captions = ["" if d else e.caption for e, d in zip(chosen, drop.tolist())]
        images = torch.stack([example_image(e, self.image_size) for e in chosen]) if self.has_pixels else None
        latents = torch.stack([load_latent(e.latent) for e in chosen]) if self.has_latents else None
        return Batch(captions, images, latents)


def example_image(example: Example, size: int) -> torch.Tensor:
    """(3, size, size) in [-1, 1]: a rendered scene or an image file."""
    if example.scene is not None:
        array = torch.from_numpy(shapes.render(example.scene, size).astype(np.float32)).permute(2, 0, 1)
        return array / 127.5 - 1.0
    return load_image(example.image, size)


def load_image(path: Path, size: int) -> torch.Tensor:
    """(3, size, size) in [-1, 1]: centre-cropped to a square, resized with bicubic filtering."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"expected an image file, got an unreadable one: {exc} (in {path})") from None
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    img = img.resize((size, size), Image.Resampling.BICUBIC)
    array = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)
    return array / 127.5 - 1.0


def load_latent(path: Path) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"expected a .npy latent array, got an unreadable file: {exc} (in {path})") from None
    if array.ndim != 3:
        raise UserError(f"expected a latent of shape (channels, h, w), got shape {tuple(array.shape)} (in {path})")
    return torch.from_numpy(array.astype(np.float32))
