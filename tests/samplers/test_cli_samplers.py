"""The sampler options of the CLI as a user types them: `generate --sampler/--negative-prompt/--eta`,
`convert --sampler/--steps/--guidance`, `latency estimate --sampler`; bad values get one line, exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from tests.samplers.cases import SD15


def _with_scheduler(diffusers_folder, tmp_path, config: dict):
    root = diffusers_folder[0]
    out = tmp_path / "model"
    shutil.copytree(root, out)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps({**SD15, **config}))
    return out


@pytest.mark.slow
def test_generate_reads_the_sampler_and_takes_a_negative_prompt(diffusers_folder, tmp_path, capsys):
    model = _with_scheduler(diffusers_folder, tmp_path, {"_class_name": "EulerAncestralDiscreteScheduler",
                                                        "timestep_spacing": "trailing"})
    code, out, err = run_cli(["generate", str(model), "--prompt", "a red circle", "--steps", "2", "--json",
                              "-o", str(tmp_path / "a.png")], capsys)
    assert code == 0, err
    assert (json.loads(out)["sampler"], json.loads(out)["unet_steps"]) == ("euler_ancestral", 2)
    # the bundled model follows its prompts (the tiny random one barely does): the negative prompt
    # and another sampler each change the image
    base = ["generate", "--prompt", "a red circle on a blue background", "--steps", "2", "--seed", "3", "--json"]
    for name, extra in (("a", []), ("b", ["--negative-prompt", "a blue background"]), ("c", ["--sampler", "euler_ancestral"])):
        code, out, err = run_cli(base + extra + ["-o", str(tmp_path / f"{name}.png")], capsys)
        assert code == 0, err
    assert json.loads(out)["sampler"] == "euler_ancestral"
    a, b, c = (np.asarray(Image.open(tmp_path / f"{n}.png")).astype(int) for n in "abc")
    assert np.abs(a - b).mean() > 2 and np.abs(a - c).mean() > 2


@pytest.mark.parametrize("config, args, message", [
    ({"_class_name": "UniPCMultistepScheduler"}, [], "unsupported scheduler 'UniPCMultistepScheduler'"),
    ({"_class_name": "DDIMScheduler", "thresholding": True}, [], "unsupported scheduler setting thresholding=True"),
    ({"_class_name": "DDIMScheduler"}, ["--sampler", "heun"], "expected --sampler ddim, pndm"),
    ({"_class_name": "DDIMScheduler"}, ["--eta", "0.5"], "expected --eta only with the tcd sampler"),
    ({"_class_name": "TCDScheduler"}, ["--eta", "2"], "expected --eta in [0, 1] for tcd, got 2.0"),
    ({"_class_name": "LCMScheduler"}, ["--steps", "60"], "expected at most 50 steps for lcm"),
])
def test_bad_samplers_get_one_line(diffusers_folder, tmp_path, capsys, config, args, message):
    model = _with_scheduler(diffusers_folder, tmp_path, config)
    code, out, err = run_cli(["generate", str(model), "--prompt", "x", "-o", str(tmp_path / "x.png"), *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_unsupported_scheduler_is_refused_by_convert(diffusers_folder, tmp_path, capsys):
    model = _with_scheduler(diffusers_folder, tmp_path, {"_class_name": "KDPM2DiscreteScheduler"})
    code, out, err = run_cli(["convert", str(model), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and "unsupported scheduler 'KDPM2DiscreteScheduler'" in err and "--sampler" in err, err
    assert not (tmp_path / "out").exists()


def test_latency_estimate_counts_unet_evaluations(capsys):
    code, out, err = run_cli(["latency", "estimate", "--layout", "sd-v1.5", "--sampler", "lcm", "--steps", "4",
                              "--guidance", "1", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert (result["sampler"], result["unet_calls"], result["unet_evaluations"], result["cfg"]) == ("lcm", 4, 4, False)
