import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from snapfusion_coreml.config import SchedulerConfig
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.modeling.factory import TINY_TEXT, tiny_layout
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.train import checkpoint as ckpt
from snapfusion_coreml.train.distill_steps import DistillStepsConfig, distill_steps, student_paths
from snapfusion_coreml.train.loop import read_log


@pytest.fixture()
def config(training):
    def make(teacher_dir, prompts, out, **kw):
        run = training(out, **kw.pop("run", {}))
        return DistillStepsConfig(str(teacher_dir), prompts, run, teacher_steps=4, student_steps=2, cfg_probability=0.5, **kw)
    return make


def test_student_paths_nest_teacher_timesteps():
    paths = student_paths(SchedulerConfig(), 4, 2)
    assert paths.tolist() == [[999, 749, 499], [499, 249, -1]]  # trailing: 999, 749, 499, 249
    assert student_paths(SchedulerConfig(), 8, 2).tolist()[1] == [499, 374, 249, 124, -1]  # direct, k = 4
    with pytest.raises(UserError, match="trailing"):
        student_paths(SchedulerConfig(timestep_spacing="leading", steps_offset=1), 32, 16)


def test_schedules_and_step_errors(config, teacher_dir, prompts, tmp_path):
    assert config(teacher_dir, prompts, tmp_path / "o", schedule="progressive").stages() == [(4, 2)]
    c = dataclasses.replace(config(teacher_dir, prompts, tmp_path / "o"), teacher_steps=32, student_steps=8, schedule="progressive")
    assert c.stages() == [(32, 16), (16, 8)]
    with pytest.raises(UserError, match="divide"):
        dataclasses.replace(c, student_steps=12).stages()
    with pytest.raises(UserError, match="power-of-two"):
        dataclasses.replace(c, teacher_steps=24).stages()


@pytest.mark.slow
def test_loss_falls_and_output_loads(config, teacher_dir, prompts, tmp_path):
    student, results = distill_steps(config(teacher_dir, prompts, tmp_path / "student", run=dict(max_steps=6)))
    result = results[0]
    assert result.eval_after < result.eval_before
    loaded = load_pipeline(tmp_path / "student")
    assert loaded.defaults.steps == 2 and loaded.scheduler.prediction_type == "v_prediction"
    records = [r for r in read_log(result.log_path) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 7))
    assert all(r["gamma_eff"] * r["l_ori"] == pytest.approx(0.2 * r["l_dstl"], rel=1e-4) for r in records)


def test_student_with_another_layout(config, teacher_dir, prompts, tmp_path):
    small = tiny_layout(TINY_TEXT["hidden_size"], snapfusion=True)
    layout_file = tmp_path / "small.json"
    small.save(layout_file)
    distill_steps(config(teacher_dir, prompts, tmp_path / "s", student_layout=str(layout_file), run=dict(max_steps=1, evaluate=False)))
    assert load_pipeline(tmp_path / "s").unet.layout == small


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(config, teacher_dir, prompts, tmp_path):
    full = config(teacher_dir, prompts, tmp_path / "a", run=dict(max_steps=4, checkpoint_every=2, ema_decay=0.9, evaluate=False))
    _, (a,) = distill_steps(full)
    half = dataclasses.replace(full, training=dataclasses.replace(full.training, out=tmp_path / "b", max_steps=2))
    distill_steps(half)
    rest = dataclasses.replace(half, training=dataclasses.replace(half.training, max_steps=4, overwrite=True))
    _, (b,) = distill_steps(rest)
    assert b.start_step == 2
    curve = lambda r: [x["loss"] for x in read_log(r.log_path) if "loss" in x]  # noqa: E731
    assert curve(a) == curve(b) and len(curve(a)) == 4
    wa = load_file(str(tmp_path / "a" / "unet" / "diffusion_pytorch_model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_kill_during_checkpoint_write_keeps_previous(config, teacher_dir, prompts, tmp_path, monkeypatch):
    c = config(teacher_dir, prompts, tmp_path / "k", run=dict(max_steps=4, checkpoint_every=2, evaluate=False))
    real = ckpt.write_payload
    calls = []

    def dying(tmp, model, ema, optimizer):
        calls.append(1)
        if len(calls) == 2:  # the step-4 checkpoint: die half-way through its files
            real(tmp, model, ema, optimizer)
            (tmp / "optimizer.pt").write_bytes(b"truncated")
            raise KeyboardInterrupt("killed while writing")
        real(tmp, model, ema, optimizer)

    monkeypatch.setattr(ckpt, "write_payload", dying)
    with pytest.raises(KeyboardInterrupt):
        distill_steps(c)
    latest = ckpt.latest_checkpoint(c.training.work_dir)
    assert latest.step == 2  # the half-written step-4 folder never got its final name
    model, _, optimizer, _ = ckpt.read_checkpoint(latest, 0)
    assert model and optimizer["state"]
    monkeypatch.setattr(ckpt, "write_payload", real)
    _, (resumed,) = distill_steps(c)
    assert resumed.start_step == 2 and resumed.steps == 4
    assert sorted(p.name for p in (c.training.work_dir / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
