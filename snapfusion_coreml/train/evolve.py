"""Robust training and architecture evolution (SnapFusion paper Sec. 3.1, Algorithm 1).

Every evolve iteration:
  1. robust training: the ordinary denoising loss (L_ori in the model's prediction type) while
     every skippable block is replaced by the identity with probability p, independently per
     block and per step, so the network learns to tolerate a missing block;
  2. evaluation: for every candidate block b, dCLIP_b = score(skip {b}) - score(skip {}) and
     dLatency_b = -latency_b (ms), value_b = dCLIP_b / dLatency_b: the quality lost per ms saved;
  3. action: while the UNet's latency is above the target, remove the blocks with the smallest
     value (at most --actions-per-step, stopping as soon as the target is met); once at or below
     the target, copy the block with the largest value (inserted right after it) when the copy
     still fits under the target; when nothing fits, evolution has converged.
Every action is logged (evolve.jsonl) with dCLIP and dLatency, and every iteration's layout is
written as JSON (UNetLayout.save). Latencies come from a device latency table (looked up per
stage, kind and index) or, without one, the cost model re-estimated for each layout.

Decisions where the paper is silent: the skip probability (default 0.1); candidates are blocks
whose output has the channels of their input (a block can only be an identity then) and whose
removal leaves a valid layout; latency means the sum of the table's block p50s (UNet batch 2).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import BlockSpec, UNetLayout, plan_blocks
from ..errors import UserError
from ..latency.table import LatencyTable, load_latency_table
from ..pipeline import Pipeline
from ..schedule import alphas_cumprod
from . import losses
from .common import LatentSource, TextConditioner, freeze, load_model, make_stream, noise_batch, uniform_timesteps
from .data import STREAM_SKIP, load_examples, step_generator
from .loop import TrainingConfig, make_accelerator, on_main_process, run_training
from .scorers import QualityScorer, load_scorer


@dataclass(frozen=True)
class EvolveConfig:
    model: str  # MODEL folder to evolve
    data: Path  # image-text folder, .npy latents or prompt list (robust training and scorer prompts)
    training: TrainingConfig  # max_steps: robust-training steps per evolve iteration
    latency_target_ms: float  # target for the UNet's block latency per step (batch 2)
    latency_table: Path | None = None  # device JSON; None: the cost model (estimates)
    skip_probability: float = 0.1
    iterations: int = 10
    actions_per_step: int = 1
    scorer: str = "fidelity"  # "clip" | "fidelity" | "module:factory"
    clip_weights: Path | None = None
    clip_model: str = "ViT-g-14"
    score_prompts: int = 8  # how many prompts of the data the scorer uses
    score_steps: int = 50  # sampling steps of the CLIP scorer
    caption_dropout: float = 0.1
    data_steps: int = 8  # prompt lists only: DDIM steps when sampling x0 from a frozen snapshot of the model


def skippable(specs: list[BlockSpec]) -> list[str]:
    """Blocks that can act as the identity: same channels out as in (skip connection aside)."""
    return [s.name for s in specs if s.in_channels - s.skip_channels == s.out_channels]


def sample_skip_blocks(names: list[str], probability: float, generator: torch.Generator) -> frozenset[str]:
    """Each block independently with `probability`."""
    draws = torch.rand(len(names), generator=generator)
    return frozenset(n for n, d in zip(names, draws.tolist()) if d < probability)


# --- layout edits -------------------------------------------------------------------------------
def _edit(layout: UNetLayout, spec: BlockSpec, action: str) -> UNetLayout:
    stage = layout.stage(spec.stage)
    blocks = list(stage.blocks)
    if action == "remove":
        del blocks[spec.position]
    else:  # copy: insert a second block of the same kind right after it
        blocks.insert(spec.position + 1, spec.kind)
    return layout.replace_stage(spec.stage, dataclasses.replace(stage, blocks=tuple(blocks)))


def edit_layout(layout: UNetLayout, block: str, action: str) -> UNetLayout | None:
    """The layout with `block` removed or copied, or None if that layout cannot be built."""
    spec = {s.name: s for s in plan_blocks(layout)}[block]
    try:
        new = _edit(layout, spec, action)
        new.validate()
    except UserError:
        return None
    return new


def apply_action(unet: torch.nn.Module, block: str, action: str) -> torch.nn.Module:
    """A UNet of the edited layout keeping every surviving block's weights (renamed by position);
    a copied block starts from the original's weights."""
    from ..modeling.checkpoint import checkpoint_state_dict, load_weights
    from ..modeling.unet import SnapFusionUNet
    from ..modeling.unet_mapping import map_unet_state

    old_layout = unet.layout
    new_layout = edit_layout(old_layout, block, action)
    if new_layout is None:
        raise UserError(f"cannot {action} {block}: the layout would be invalid")
    old_specs = {(s.stage, s.position): s for s in plan_blocks(old_layout)}
    target = {s.name: s for s in plan_blocks(old_layout)}[block]
    rename: dict[str, list[str]] = {}
    for s in plan_blocks(new_layout):
        pos = s.position
        if s.stage == target.stage:
            if action == "remove" and pos >= target.position:
                pos += 1
            elif action == "copy" and pos > target.position:
                pos -= 1
        rename.setdefault(old_specs[(s.stage, pos)].name, []).append(s.name)
    state = checkpoint_state_dict(unet)
    renamed = {}
    for key, value in state.items():
        old = next((name for name in old_specs_names(old_specs) if key.startswith(name + ".")), None)
        if old is None:
            renamed[key] = value
            continue
        for new in rename.get(old, []):
            renamed[new + key[len(old):]] = value.clone()
    mapped, _ = map_unet_state(renamed, new_layout, new_layout, "evolved UNet")
    new_unet = SnapFusionUNet(new_layout, unet.attention)
    load_weights(new_unet, mapped, "evolved UNet")
    return new_unet


def old_specs_names(specs: dict) -> list[str]:
    return sorted((s.name for s in specs.values()), key=len, reverse=True)  # longest first: "x.1" vs "x.10"


# --- latency --------------------------------------------------------------------------------------
def block_latencies(layout: UNetLayout, table: LatencyTable | None, image_size: int) -> dict[str, float]:
    """Milliseconds per block: from the device table, or the cost model's estimate for this layout."""
    if table is None:
        from ..latency.cost_model import estimate_table

        return {e.name: e.p50_ms for e in estimate_table(layout, image_size).entries}
    out = {}
    for spec in plan_blocks(layout):
        entry = table.lookup(spec.stage, spec.kind, spec.index)
        if entry is None:
            raise UserError(f"expected a latency entry for a {spec.kind} block in {spec.stage}, got none (in the latency table)")
        out[spec.name] = entry.p50_ms
    return out


# --- the loop -------------------------------------------------------------------------------------
def robust_train(pipeline: Pipeline, config: EvolveConfig, run: TrainingConfig, iteration: int) -> torch.nn.Module:
    """Denoising loss with random per-block skips; returns the trained UNet."""
    accelerator = make_accelerator(run)
    device = accelerator.device
    unet = pipeline.unet.train().requires_grad_(True)
    text = TextConditioner(pipeline, device)
    stream = make_stream(config.data, run, config.caption_dropout, pipeline.defaults.image_size, accelerator)
    teacher = dataclasses.replace(pipeline, unet=freeze(copy.deepcopy(unet)).to(device))
    source = LatentSource(teacher, text, pipeline.check_image_size(pipeline.defaults.image_size), run.seed,
                          accelerator.process_index, None, config.data_steps, 7.5, accelerator.num_processes)
    cumprod, rank, world = alphas_cumprod(pipeline.scheduler), accelerator.process_index, accelerator.num_processes
    candidates = skippable(plan_blocks(unet.layout))
    ptype = pipeline.scheduler.prediction_type

    def step_fn(model, micro_step):
        batch = stream.batch(micro_step)
        x0 = source(batch, micro_step, device)
        t = uniform_timesteps(x0.shape[0], pipeline.scheduler, run.seed, micro_step, rank, device, world)
        noised = noise_batch(x0, t, cumprod, run.seed, micro_step, rank, world)
        # the skipped blocks are one draw per global batch: every process skips the same ones
        skips = sample_skip_blocks(candidates, config.skip_probability, step_generator(run.seed, micro_step, 0, STREAM_SKIP))
        prediction = model(noised.z_t, t.float(), text(batch.captions), skip_blocks=skips)
        loss = losses.original_loss(prediction.float(), x0, noised.eps, noised.alpha, noised.sigma, ptype)
        return loss, {"skip_rate": len(skips) / max(len(candidates), 1)}

    fingerprint = {"kind": "evolve-robust", "iteration": iteration, "layout": unet.layout.to_dict(),
                   "skip_probability": config.skip_probability}
    return run_training(accelerator, run, unet, step_fn, f"robust training {iteration}", fingerprint).model


def evolve(config: EvolveConfig, scorer: QualityScorer | None = None) -> tuple[Pipeline, list[dict]]:
    """Algorithm 1. Returns the evolved pipeline (saved to config.training.out) and the action log."""
    from ..modeling.loading import save_pipeline

    # 1. load: model, latency table, scorer
    config.training.validate()
    if not 0.0 <= config.skip_probability < 1.0:
        raise UserError(f"expected a skip probability in [0, 1), got {config.skip_probability}")
    pipeline = load_model(config.model, "the")
    table = load_latency_table(config.latency_table) if config.latency_table else None
    if scorer is None:
        prompts = [e.caption for e in itertools.islice(load_examples(config.data), config.score_prompts)]
        scorer = load_scorer(config.scorer, prompts, config.clip_weights, config.clip_model, config.score_steps, config.training.seed)
    work = config.training.work_dir
    (work / "evolve").mkdir(parents=True, exist_ok=True)
    log_path = work / "evolve.jsonl"
    log_path.write_text("")
    image_size = pipeline.defaults.image_size
    actions: list[dict] = []

    for iteration in range(1, config.iterations + 1):
        # 2. robust training
        run = dataclasses.replace(config.training, run_dir=work / f"robust-{iteration:03d}", resume=False)
        if run.max_steps:
            pipeline = dataclasses.replace(pipeline, unet=robust_train(pipeline, config, run, iteration).cpu())
        freeze(pipeline.unet)
        pipeline.text_encoder.cpu()
        if hasattr(scorer, "reset"):
            scorer.reset()
        # 3. evaluate every candidate's removal: dCLIP / dLatency
        layout = pipeline.unet.layout
        latency = block_latencies(layout, table, image_size)
        total = sum(latency.values())
        base = scorer(pipeline, frozenset())
        values = []
        for name in skippable(plan_blocks(layout)):
            if edit_layout(layout, name, "remove") is None:
                continue
            d_clip = scorer(pipeline, frozenset({name})) - base
            d_latency = -latency[name]
            values.append({"block": name, "dCLIP": d_clip, "dLatency_ms": d_latency,
                           "value": d_clip / d_latency if d_latency else float("inf")})
        values.sort(key=lambda v: v["value"])
        # 4. act: remove the least valuable blocks while above the target, else copy the best
        taken = []
        if total > config.latency_target_ms:
            for v in values[: config.actions_per_step]:
                if total <= config.latency_target_ms:
                    break
                taken.append({**v, "action": "remove"})
                total += v["dLatency_ms"]
        else:
            for v in reversed(values):
                if total - v["dLatency_ms"] <= config.latency_target_ms and edit_layout(layout, v["block"], "copy"):
                    taken.append({**v, "action": "copy", "dCLIP": -v["dCLIP"], "dLatency_ms": -v["dLatency_ms"]})
                    total -= v["dLatency_ms"]
                    if len(taken) == config.actions_per_step:
                        break
        # apply removals from the last block backwards so earlier names stay valid
        unet = pipeline.unet
        for act in sorted(taken, key=lambda a: _order(layout, a["block"]), reverse=True):
            unet = apply_action(unet, act["block"], act["action"])
        pipeline = dataclasses.replace(pipeline, unet=freeze(unet))
        layout_path = work / "evolve" / f"iter-{iteration:03d}.layout.json"
        pipeline.unet.layout.save(layout_path)
        record = {"iteration": iteration, "latency_ms_before": sum(latency.values()), "latency_ms_after": total,
                  "latency_estimated": table is None, "score": base, "actions": taken, "layout": str(layout_path),
                  "candidates": values}
        actions.append(record)
        with open(log_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if not taken:
            break  # converged: at the target and nothing more fits

    # 5. save the evolved model
    pipeline = dataclasses.replace(pipeline, source=f"evolved from {config.model}")
    on_main_process(lambda: save_pipeline(pipeline, Path(config.training.out), overwrite=config.training.overwrite))
    return pipeline, actions


def _order(layout: UNetLayout, block: str) -> tuple[int, int]:
    names = [s.name for s in plan_blocks(layout)]
    return (names.index(block), 0)


__all__ = ["EvolveConfig", "apply_action", "block_latencies", "edit_layout", "evolve", "robust_train",
           "sample_skip_blocks", "skippable"]
