"""Train the attribute judge on the shapes data set, deterministically, in minutes on a CPU.

    result = train_judge(JudgeTraining(), out=Path("models/judge"))

Seeds (snapfusion_coreml/eval/shapes.py data sets are indexed by seed): the diffusion model trains on `shapes`
(seed 0); the judge trains on seed 1 (JUDGE_TRAIN_SEED) and reports its accuracy on seed 2
(JUDGE_HELD_OUT_SEED); `eval` draws its prompts from seed 3 and its real reference images from
seed 4 (run.py). No scene is shared between any two of them except by chance of the grammar.
Same seeds, same torch version and thread count give the same weights bit for bit.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import UserError
from ..io import atomic_directory
from . import shapes
from .judge import ATTRIBUTES, Judge, JudgeConfig, attribute_accuracy

JUDGE_TRAIN_SEED = 1
JUDGE_HELD_OUT_SEED = 2


@dataclass(frozen=True)
class JudgeTraining:
    seed: int = JUDGE_TRAIN_SEED  # data set seed of the training scenes (also seeds init and order)
    held_out_seed: int = JUDGE_HELD_OUT_SEED  # data set seed of the accuracy report
    train_images: int = 6000
    held_out_images: int = 1000
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 3e-3
    render_size: int = 128  # the data set's native size; the judge resizes as it does for any image
    augment: bool = True  # blur and noise, so soft generated images are judged like crisp renders

    def __post_init__(self):
        if self.seed == self.held_out_seed:
            raise UserError(f"expected a held-out seed other than the training seed, got {self.seed} for both")
        for name in ("train_images", "held_out_images", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"expected --{name.replace('_', '-')} >= 1, got {getattr(self, name)}")


def scene_images(seed: int, count: int, size: int = 128, start: int = 0) -> tuple[np.ndarray, list[dict[str, str]]]:
    """(count, size, size, 3) uint8 renders of scenes start.. of data set `seed`, and their attributes."""
    scenes = [shapes.scene(seed, start + i) for i in range(count)]
    images = np.stack([shapes.render(s, size) for s in scenes]) if scenes else np.zeros((0, size, size, 3), np.uint8)
    return images, [{"shape": s.shape, "color": s.color, "background": s.background} for s in scenes]


def _prepared(judge: Judge, seed: int, count: int, size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    xs, labels = [], {a: [] for a in ATTRIBUTES}
    for start in range(0, count, 500):
        images, attrs = scene_images(seed, min(500, count - start), size, start)
        xs.append(judge.prepare(images).half())
        for a in ATTRIBUTES:
            labels[a] += [judge.config.classes(a).index(t[a]) for t in attrs]
    return torch.cat(xs), {a: torch.tensor(v) for a, v in labels.items()}


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A blur (down- and up-sampling the batch to a random side) and per-image Gaussian noise."""
    n, _, side, _ = x.shape
    small = int(torch.randint(3 * side // 4, side + 1, (), generator=generator))
    out = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
    out = F.interpolate(out, size=side, mode="bilinear", align_corners=False)
    sigma = 0.1 * torch.rand((n, 1, 1, 1), generator=generator)
    return (out + sigma * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def train_judge(training: JudgeTraining, out: Path | None = None, overwrite: bool = False,
                config: JudgeConfig = JudgeConfig(), command: str = "",
                on_epoch: Callable[[int, float], None] | None = None) -> tuple[Judge, dict]:
    """Train a judge; returns it and its metadata (held-out accuracy, settings, time).

    With `out`, writes judge.json + model.safetensors there atomically.
    """
    start = time.perf_counter()
    # 1. seeded model and data (renders of the training and the held-out scenes)
    torch.manual_seed(training.seed)
    judge = Judge(config)
    x, y = _prepared(judge, training.seed, training.train_images, training.render_size)
    order_gen = torch.Generator().manual_seed(training.seed)
    optimizer = torch.optim.Adam(judge.parameters(), lr=training.learning_rate)
    steps_per_epoch = -(-training.train_images // training.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, training.learning_rate,
                                                   total_steps=training.epochs * steps_per_epoch)
    # 2. epochs of shuffled mini-batches, one cross-entropy per attribute
    judge.train()
    for epoch in range(training.epochs):
        order = torch.randperm(training.train_images, generator=order_gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * training.batch_size:(i + 1) * training.batch_size]
            batch = x[idx].float()
            if training.augment:
                batch = _augment(batch, order_gen)
            _, logits = judge(batch)
            loss = sum(F.cross_entropy(logits[a], y[a][idx]) for a in ATTRIBUTES)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        if on_epoch:
            on_epoch(epoch + 1, total / steps_per_epoch)
    judge.eval()
    # 3. accuracy on held-out scenes
    images, wanted = scene_images(training.held_out_seed, training.held_out_images, training.render_size)
    accuracy = attribute_accuracy(judge.predict(images), wanted)
    metadata = {"command": command, "training": dataclasses.asdict(training),
                "held_out_accuracy": accuracy, "train_seconds": round(time.perf_counter() - start, 1),
                "torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
    if out is not None:
        with atomic_directory(Path(out), overwrite) as tmp:
            judge.save(tmp, metadata)
    judge.metadata = metadata
    return judge, metadata
