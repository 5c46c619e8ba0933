"""`snapfusion-coreml interpret OUT` spoken to as a client would: a subprocess, the protocol of
docs/contracts.md section 8 on its stdin/stdout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snapfusion_coreml.interpreter.folder import FolderRunner
from snapfusion_coreml.metrics import MIN_PSNR_DB, psnr

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")  # the server runs on one thread too: same sums, same bits


def start(folder: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "snapfusion_coreml", "interpret", str(folder), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def request(component: str, inputs: dict[str, np.ndarray]) -> bytes:
    header = {"component": component,
              "inputs": [{"name": k, "dtype": "int32" if v.dtype.kind == "i" else "float32", "shape": list(v.shape)}
                         for k, v in inputs.items()]}
    return (json.dumps(header) + "\n").encode() + b"".join(np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes()
                                                          for v in inputs.values())


def read_answer(stream) -> dict:
    """{"error": ...} or {"outputs": {name: array}} read from the server's stdout."""
    line = stream.readline()
    assert line.endswith(b"\n"), f"no answer line, got {line!r}"
    answer = json.loads(line)
    if "error" in answer:
        assert set(answer) == {"error"} and "\n" not in answer["error"]
        return answer
    outputs = {}
    for item in answer["outputs"]:
        assert item["dtype"] == "float32"
        data = stream.read(math.prod(item["shape"]) * 4)
        outputs[item["name"]] = np.frombuffer(data, "<f4").reshape(item["shape"])
    return {"outputs": outputs}


def example_inputs(folder: FolderRunner, key: str) -> dict[str, np.ndarray]:
    from snapfusion_coreml.verify.reference import component_inputs

    return component_inputs(key, folder.declared_inputs(key), folder.path)


@pytest.mark.slow
def test_serves_every_component_as_the_interpreter_computes_it(tiny_converted_dir, tiny_model_dir):
    folder = FolderRunner(tiny_converted_dir, "fp16")
    keys = ("text_encoder", "unet", "decoder")
    inputs = {k: example_inputs(folder, k) for k in keys}
    server = start(tiny_converted_dir)
    server.stdin.write(b"".join(request(k, inputs[k]) for k in keys))
    server.stdin.flush()
    answers = {k: read_answer(server.stdout) for k in keys}
    server.stdin.close()
    assert server.wait(timeout=60) == 0
    assert server.stdout.read() == b""  # nothing after the last answer
    assert "input ended after 3 requests" in server.stderr.read().decode()

    for key in keys:
        got, want = answers[key]["outputs"], folder.run(key, inputs[key])
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    # and the served UNet is the converted model: close to PyTorch
    from snapfusion_coreml.modeling.loading import load_pipeline

    pipeline = load_pipeline(str(tiny_model_dir))
    with torch.no_grad():
        ref = pipeline.unet(*(torch.from_numpy(inputs["unet"][n]) for n in ("sample", "timestep", "encoder_hidden_states")))
    assert psnr(ref.numpy(), answers["unet"]["outputs"]["noise_pred"]) >= MIN_PSNR_DB


@pytest.mark.slow
def test_bad_requests_get_one_line_errors_and_the_server_goes_on(tiny_converted_dir):
    folder = FolderRunner(tiny_converted_dir, "fp16")
    good = example_inputs(folder, "decoder")
    z = good["z"]
    ids = example_inputs(folder, "text_encoder")["input_ids"]
    stream = b"".join([
        b"{not json\n",
        request("vae", good),  # unknown component: its bytes are skipped
        request("decoder", {"z": z[:, :, :4]}),  # wrong shape
        request("decoder", {"latents": z}),  # wrong name
        request("text_encoder", {"input_ids": ids.astype(np.int32)}),  # ids as declared: float32
        b'{"component": "decoder", "inputs": [{"name": "z", "dtype": "float64", "shape": [1]}]}\n',
        request("decoder", good),  # still serving
    ])
    server = start(tiny_converted_dir, "--precision", "fp32")
    out, err = server.communicate(stream, timeout=120)
    assert server.returncode == 0, err.decode()
    lines = out.split(b"\n", 6)
    errors = [json.loads(line)["error"] for line in lines[:6]]
    assert errors[0].startswith("expected a JSON request line")
    assert "expected component from ['decoder', 'text_encoder', 'unet'], got 'vae'" in errors[1]
    assert "expected decoder input z of shape [1, 4, 8, 8], got [1, 4, 4, 8]" in errors[2]
    assert "expected decoder inputs ['z'], got ['latents']" in errors[3]
    assert "expected text_encoder input input_ids as float32, got int32" in errors[4]
    assert "dtype float32 or int32, got 'float64'" in errors[5]
    last = json.loads(lines[6].split(b"\n", 1)[0])
    image = np.frombuffer(lines[6].split(b"\n", 1)[1], "<f4")
    assert last["outputs"][0]["name"] == "image" and image.size == math.prod(last["outputs"][0]["shape"])
    np.testing.assert_array_equal(image.reshape(last["outputs"][0]["shape"]),
                                  FolderRunner(tiny_converted_dir, "fp32").run("decoder", good)["image"])


@pytest.mark.slow
def test_input_ending_inside_a_request_is_answered_then_exits_2(tiny_converted_dir):
    folder = FolderRunner(tiny_converted_dir)
    data = request("decoder", example_inputs(folder, "decoder"))
    server = start(tiny_converted_dir)
    out, err = server.communicate(data[:-10], timeout=60)
    assert server.returncode == 2
    assert json.loads(out)["error"].startswith("expected 1024 input bytes, got 1014 before the input ended")
    assert "error:" in err.decode() and "Traceback" not in err.decode()


@pytest.mark.parametrize("case", ["no_manifest", "bad_precision"])
@pytest.mark.slow
def test_unusable_folder_or_option_exits_2_before_serving(tiny_converted_dir, tmp_path, case):
    folder = tmp_path if case == "no_manifest" else tiny_converted_dir
    server = start(folder, *(["--precision", "fp8"] if case == "bad_precision" else []))
    out, err = server.communicate(b"", timeout=60)
    text = err.decode()
    assert server.returncode == 2 and out == b"" and "Traceback" not in text
    assert (f"expected pipeline.json in {tmp_path}" if case == "no_manifest" else "expected precision fp32 or fp16, got 'fp8'") in text
