import json

import pytest
import torch

from snapfusion_coreml.config import plan_blocks
from snapfusion_coreml.modeling.checkpoint import checkpoint_state_dict
from snapfusion_coreml.modeling.factory import build_tiny_pipeline
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.train.evolve import EvolveConfig, apply_action, block_latencies, evolve, sample_skip_blocks, skippable
from snapfusion_coreml.train.loop import read_log
from snapfusion_coreml.train.scorers import BlockValueScorer, FidelityScorer


def test_skip_sampling_rate():
    names = [f"b{i}" for i in range(10)]
    g = torch.Generator().manual_seed(0)
    rate = sum(len(sample_skip_blocks(names, 0.25, g)) for _ in range(2000)) / (2000 * 10)
    assert rate == pytest.approx(0.25, abs=0.01)
    assert sample_skip_blocks(names, 0.0, g) == frozenset()


def test_remove_keeps_the_surviving_blocks_weights():
    unet = build_tiny_pipeline().unet
    before = checkpoint_state_dict(unet)
    smaller = apply_action(unet, "up_blocks.0.attentions.0", "remove")
    assert smaller.layout.up[0].blocks == ("resnet", "resnet", "transformer")
    after = checkpoint_state_dict(smaller)
    moved = [k for k in before if k.startswith("up_blocks.0.attentions.1.")]
    assert moved and all(torch.equal(after[k.replace("attentions.1", "attentions.0")], before[k]) for k in moved)
    bigger = apply_action(unet, "mid_block.attentions.0", "copy")
    assert bigger.layout.mid.blocks == ("resnet", "transformer", "transformer", "resnet")
    copy = checkpoint_state_dict(bigger)
    assert all(torch.equal(copy[k.replace("attentions.0", "attentions.1")], v) for k, v in before.items()
               if k.startswith("mid_block.attentions.0."))


@pytest.mark.slow
def test_evolve_removes_least_valuable_block_and_stops_at_target(teacher_dir, prompts, tmp_path, training):
    layout = load_pipeline(teacher_dir).unet.layout
    latency = block_latencies(layout, None, 64)
    values = {name: 1.0 for name in skippable(plan_blocks(layout))}
    values["up_blocks.0.attentions.1"] = 1e-4  # the scorer barely misses it
    target = sum(latency.values()) - latency["up_blocks.0.attentions.1"] + 1e-6
    run = training(tmp_path / "evolved", max_steps=2, learning_rate=1e-4, evaluate=False)
    config = EvolveConfig(str(teacher_dir), prompts, run, latency_target_ms=target, skip_probability=0.5, iterations=5,
                          actions_per_step=3)
    pipeline, log = evolve(config, scorer=BlockValueScorer(values))
    first = log[0]["actions"]
    assert [a["block"] for a in first] == ["up_blocks.0.attentions.1"] and first[0]["action"] == "remove"
    assert first[0]["dCLIP"] == pytest.approx(-1e-4) and first[0]["dLatency_ms"] < 0
    assert len(log) == 2 and log[1]["actions"] == []  # at the target, no copy fits: converged
    assert log[-1]["latency_ms_after"] <= target
    assert pipeline.unet.layout.up[0].blocks == ("resnet", "transformer", "resnet")
    assert load_pipeline(tmp_path / "evolved").unet.layout == pipeline.unet.layout
    saved = json.loads((run.work_dir / "evolve" / "iter-001.layout.json").read_text())
    assert saved["up"][0]["blocks"] == ["resnet", "transformer", "resnet"]
    # robust training skipped blocks at about the configured rate
    rates = [r["skip_rate"] for r in read_log(run.work_dir / "robust-001" / "log.jsonl") if "skip_rate" in r]
    assert len(rates) == 2 and 0.1 < sum(rates) / 2 < 0.9


def test_fidelity_scorer_prefers_the_full_model():
    pipeline = build_tiny_pipeline(prediction_type="v_prediction")
    scorer = FidelityScorer(["a cat"], timesteps=(999, 499))
    assert scorer(pipeline, frozenset()) == 0.0
    assert scorer(pipeline, frozenset({"mid_block.attentions.0"})) < 0.0
