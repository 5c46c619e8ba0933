"""`eval`: generate images over a guidance sweep and score them.

    settings = EvalSettings(prompts="shapes", count=32, guidance=(1.0, 3.0, 7.5))
    result = evaluate("models/default", settings)            # a model folder: PyTorch
    result = evaluate("out/default", settings)               # a converted folder: its packages

Image i of every guidance value uses prompt i and seed `seed + i`, so rows of the grid differ only
by guidance. Measures, each when its inputs are given:
  - shapes-domain prompts (`shapes[:SEED]`): the attribute judge's accuracy on the generated
    images (our CLIP score) and the Frechet distance of its features to real data set renders
    (our FID; reference `shapes:4` unless --reference says otherwise);
  - CLIP score with --clip; FID with --inception and --reference (an image folder or shapes[:SEED]).
Seeds: prompts come from data set seed 3 (EVAL_PROMPT_SEED) and reference images from seed 4
(EVAL_REFERENCE_SEED); the diffusion model trains on seed 0 and the judge on seeds 1 (training)
and 2 (held out): see train_judge.py.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..assets import judge_dir
from ..contracts.pipeline_json import PIPELINE_JSON
from ..errors import UserError, expected
from ..io import IMAGE_SUFFIXES, write_png
from . import shapes
from .judge import Judge, attribute_accuracy
from .scores import CLIPScore, FeatureDistance, JudgeFeatures, inception_features
from .train_judge import scene_images

EVAL_PROMPT_SEED = 3
EVAL_REFERENCE_SEED = 4
CHUNK = 16  # images scored together


@dataclass(frozen=True)
class EvalSettings:
    prompts: str = f"shapes:{EVAL_PROMPT_SEED}"  # shapes[:SEED] or a prompt-list file (one per line)
    count: int = 32  # images per guidance value (prompt i, seed `seed + i`)
    guidance: tuple[float, ...] = (1.0, 2.0, 4.0, 7.5)
    steps: int | None = None  # default: the model's (a converted folder: its sampler.timesteps)
    seed: int = 0
    precision: str = "fp16"  # converted folders: interpreter precision
    reference: str | None = None  # shapes[:SEED] or an image folder; default shapes:4 for shapes prompts
    reference_count: int = 256  # real images for the Frechet distances (a folder: at most this many)
    judge: str | None = None  # judge folder; default the bundled models/judge for shapes prompts
    clip: str | None = None  # open_clip checkpoint file or transformers CLIP folder
    clip_model: str = "ViT-g-14"  # open_clip architecture name of a checkpoint file
    inception: str | None = None  # FID Inception weights (TorchScript or torch-fidelity state dict)

    def __post_init__(self):
        if self.count < 2:
            raise UserError(f"expected --count >= 2 (a Frechet distance needs 2 images), got {self.count}")
        if not self.guidance or any(w < 1.0 for w in self.guidance):
            raise UserError(f"expected guidance values >= 1 (1 = none), got {list(self.guidance)}")
        if self.reference_count < 2:
            raise UserError(f"expected --reference-count >= 2, got {self.reference_count}")


@dataclass
class Prompts:
    texts: list[str]
    attributes: list[dict[str, str]] | None  # shapes-domain prompts: the attributes each asks for
    source: str


@dataclass
class EvalResult:
    settings: EvalSettings
    model: str
    backend: str
    prompts: Prompts
    rows: list[dict] = field(default_factory=list)  # one per guidance value
    images: dict[float, list[np.ndarray]] = field(default_factory=dict)  # guidance -> the first grid images
    judge: dict | None = None  # the judge's own record (held-out accuracy, how it was trained)
    reference: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"format": "snapfusion-eval", "version": 1, "model": self.model, "backend": self.backend,
                "settings": dataclasses.asdict(self.settings),
                "prompts": {"source": self.prompts.source, "count": len(self.prompts.texts),
                            "image_seeds": [self.settings.seed, self.settings.seed + len(self.prompts.texts) - 1]},
                "reference": self.reference, "judge": self.judge, "results": self.rows,
                "seconds": round(self.seconds, 1)}


def load_prompts(spec: str, count: int) -> Prompts:
    """`shapes[:SEED]` (captions of scenes 0..count-1 of that data set) or a prompt-list file."""
    seed = shapes.parse_spec(spec)
    if seed is not None and not Path(spec).exists():
        scenes = [shapes.scene(seed, i) for i in range(count)]
        return Prompts([s.caption() for s in scenes],
                       [{"shape": s.shape, "color": s.color, "background": s.background} for s in scenes],
                       f"shapes:{seed}")
    path = Path(spec)
    if not path.is_file():
        raise expected("--prompts shapes[:SEED] or a prompt-list file", f"nothing at {spec}")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise expected("a UTF-8 prompt list (one prompt per line)", "binary data", str(path)) from None
    texts = [line for line in lines if line and not line.startswith("#")][:count]
    if len(texts) < 2:
        raise expected("at least 2 prompts", f"{len(texts)}", str(path))
    parsed = [shapes.parse_prompt(t) for t in texts]
    return Prompts(texts, parsed if all(p is not None for p in parsed) else None, str(path))


def load_reference(spec: str, count: int, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 real images: data set renders or an image folder (centre-cropped
    to a square, resized to `size`, in sorted file order, at most `count`)."""
    from PIL import Image

    seed = shapes.parse_spec(spec)
    if seed is not None and not Path(spec).exists():
        images, _ = scene_images(seed, count)
        return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])
    folder = Path(spec)
    if not folder.is_dir():
        raise expected("--reference shapes[:SEED] or an image folder", f"nothing at {spec}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if len(files) < 2:
        raise expected(f"at least 2 images ({', '.join(IMAGE_SUFFIXES)})", f"{len(files)}", str(folder))
    out = []
    for file in files:
        try:
            with Image.open(file) as im:
                im = im.convert("RGB")
                side = min(im.size)
                left, top = (im.width - side) // 2, (im.height - side) // 2
                out.append(np.asarray(im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)))
        except OSError as exc:
            raise expected("a readable image", f"an unreadable file ({exc})", str(file)) from None
    return np.stack(out)


def load_any_pipeline(model: str, precision: str):
    """(pipeline with .generate, backend name): a converted folder's packages or a model's PyTorch modules."""
    if (Path(model) / PIPELINE_JSON).is_file():
        from ..interpreter.backend import load_package_pipeline

        return load_package_pipeline(model, precision), f"Core ML packages (interpreter, {precision})"
    from ..modeling.attention import AttentionImpl
    from ..modeling.loading import load_pipeline

    return load_pipeline(model, attention=AttentionImpl.ORIGINAL), "PyTorch"


def evaluate(model: str, settings: EvalSettings, images_dir: Path | None = None,
             on_image: Callable[[float, int, int], None] | None = None, grid_columns: int = 8) -> EvalResult:
    """Generate `settings.count` images per guidance value with MODEL and score them.

    Images are scored in chunks as they come and written to `images_dir`/w<guidance>/<i>.png when
    given, so memory stays bounded for thousands of images; the result keeps the first
    `grid_columns` of each guidance value. on_image(w, i, total) is called after each image.
    """
    start = time.perf_counter()
    # 1. prompts, pipeline and the scorers that apply
    prompts = load_prompts(settings.prompts, settings.count)
    pipeline, backend = load_any_pipeline(model, settings.precision)
    size = pipeline.defaults.image_size
    judge = None
    if settings.judge is not None or prompts.attributes is not None:
        judge = Judge.load(settings.judge or judge_dir())
    clip = CLIPScore(settings.clip, settings.clip_model) if settings.clip else None
    reference_spec = settings.reference or (f"shapes:{EVAL_REFERENCE_SEED}" if prompts.attributes is not None else None)
    if settings.inception and reference_spec is None:
        raise UserError("expected --reference (an image folder) with --inception, got none")
    distances: dict[str, FeatureDistance] = {}
    if reference_spec is not None:
        reference = load_reference(reference_spec, settings.reference_count, size)
        if judge is not None:
            distances["judge_fd"] = FeatureDistance(JudgeFeatures(judge))
        if settings.inception:
            distances["fid"] = FeatureDistance(inception_features(settings.inception))
        for measure in distances.values():
            measure.set_reference(reference)
        del reference
    result = EvalResult(settings, str(model), backend, prompts, judge=getattr(judge, "metadata", None),
                        reference=reference_spec)

    # 2. every guidance value: the same prompts and seeds
    for w in settings.guidance:
        predictions: list[dict[str, str]] = []
        clip_scores: list[np.ndarray] = []
        for measure in distances.values():
            measure.reset()
        chunk: list[np.ndarray] = []

        def score(images: list[np.ndarray], first: int, predictions=predictions, clip_scores=clip_scores) -> None:
            # 3. scores, a chunk at a time
            batch = np.stack(images)
            if judge is not None and prompts.attributes is not None:
                predictions.extend(judge.predict(batch))
            if clip is not None:
                clip_scores.append(clip(batch, prompts.texts[first:first + len(batch)]))
            for measure in distances.values():
                measure.add(batch)

        for i, prompt in enumerate(prompts.texts):
            image = pipeline.generate(prompt, settings.steps, w, settings.seed + i)
            if images_dir is not None:
                write_png(Path(images_dir) / f"w{w:g}" / f"{i:04d}.png", image)
            if i < grid_columns:
                result.images.setdefault(w, []).append(image)
            chunk.append(image)
            if len(chunk) == CHUNK or i + 1 == len(prompts.texts):
                score(chunk, i + 1 - len(chunk))
                chunk = []
            if on_image:
                on_image(w, i + 1, len(prompts.texts))
        # 4. this guidance value's row
        row: dict = {"guidance": w, "images": len(prompts.texts)}
        if predictions:
            row["judge_accuracy"] = attribute_accuracy(predictions, prompts.attributes)
        if clip_scores:
            row["clip_score"] = float(np.concatenate(clip_scores).mean())
        for name, measure in distances.items():
            row[name] = measure.compute()
        result.rows.append(row)
    result.seconds = time.perf_counter() - start
    return result
