"""The attribute judge: deterministic training, round trip, the shipped weights' accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snapfusion_coreml.assets import judge_dir
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.eval.judge import Judge, attribute_accuracy
from snapfusion_coreml.eval.train_judge import JUDGE_HELD_OUT_SEED, JudgeTraining, scene_images, train_judge


def test_training_is_deterministic_and_round_trips(small_judge_dir):
    judge = Judge.load(small_judge_dir)
    again, meta = train_judge(JudgeTraining(train_images=96, held_out_images=24, epochs=1, batch_size=32))
    for name, value in again.state_dict().items():
        assert torch.equal(value, judge.state_dict()[name]), name
    record = json.loads((small_judge_dir / "judge.json").read_text())
    assert record["held_out_accuracy"] == meta["held_out_accuracy"] and record["command"] == "test"
    assert record["training"]["seed"] == 1 and record["training"]["held_out_seed"] == 2
    images, _ = scene_images(5, 3)
    assert judge.features(images).shape == (3, judge.config.feature_dim)
    predictions = judge.predict(images)
    assert all(set(p) == {"shape", "color", "background"} for p in predictions)


@pytest.mark.slow
def test_shipped_judge_names_held_out_scenes():
    """models/judge, as `eval train-judge` wrote it, on scenes of the held-out seed it never saw."""
    judge = Judge.load(judge_dir())
    assert judge.metadata["held_out_accuracy"]["all"] >= 0.95
    assert judge.metadata["command"].startswith("snapfusion-coreml eval train-judge")
    images, wanted = scene_images(JUDGE_HELD_OUT_SEED, 200, start=5000)
    accuracy = attribute_accuracy(judge.predict(images), wanted)
    assert accuracy["all"] >= 0.95, accuracy
    # the same scenes at the 256 px of the bundled model's images, softened as generated images are
    big = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).float(), size=256, mode="bilinear")
    big = big.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    assert attribute_accuracy(judge.predict(big), wanted)["all"] >= 0.95


def test_accuracy_counts_each_attribute():
    want = [{"shape": "circle", "color": "red", "background": "blue"}] * 2
    got = [{"shape": "circle", "color": "red", "background": "blue"}, {"shape": "square", "color": "red", "background": "blue"}]
    acc = attribute_accuracy(got, want)
    assert acc == {"shape": 0.5, "color": 1.0, "background": 1.0, "attributes": pytest.approx(2.5 / 3), "all": 0.5}


def test_bad_judge_folders(small_judge_dir, tmp_path):
    with pytest.raises(UserError, match="expected a judge config"):
        Judge.load(tmp_path)
    (tmp_path / "judge.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(UserError, match="expected format 'snapfusion-judge' version 1"):
        Judge.load(tmp_path)
    record = json.loads((small_judge_dir / "judge.json").read_text())
    record["config"]["feature_dim"] = 32
    (tmp_path / "judge.json").write_text(json.dumps(record))
    (tmp_path / "model.safetensors").write_bytes((small_judge_dir / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="expected judge weights matching judge.json"):
        Judge.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="expected a safetensors file"):
        Judge.load(tmp_path)
    with pytest.raises(UserError, match="expected images"):
        Judge.load(small_judge_dir).predict(np.zeros((2, 8, 8, 3), np.float32))
