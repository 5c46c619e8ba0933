"""The VAE encoder as a converted component: VAEEncoder.mlpackage (z (1, 3, H, W) -> latent
(1, 2C, h, w)), fp16 and not palettized, described in pipeline.json format 3, checked by `verify`,
listed by `inspect`, converted alone with `--components encoder`, byte-reproducible, run by the
`interpret` server; models without an encoder convert as before and refuse `--components encoder`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from snapfusion_coreml.contracts.pipeline_json import PipelineManifest

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a shared machine



def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_convert_writes_the_encoder_package(converted_with_encoder, diffusers_folder):
    manifest = PipelineManifest.read(converted_with_encoder)
    assert (converted_with_encoder / "VAEEncoder.mlpackage").is_dir()
    data = json.loads((converted_with_encoder / "pipeline.json").read_text())
    assert data["format_version"] == 3 and list(data["components"]) == ["text_encoder", "unet", "decoder", "encoder"]
    encoder = manifest.component("encoder")
    assert encoder.file == "VAEEncoder.mlpackage" and encoder.precision == "float16"
    assert encoder.compression.mode == "none" and encoder.attention is None
    assert [(t.name, t.shape) for t in encoder.inputs] == [("z", (1, 3, 64, 64))]
    assert [(t.name, t.shape) for t in encoder.outputs] == [("latent", (1, 8, 8, 8))]


@pytest.mark.slow
def test_verify_checks_the_encoder_and_inspect_lists_it(converted_with_encoder, capsys):
    from snapfusion_coreml.verify.check import verify_folder

    report = verify_folder(converted_with_encoder, modes=("fp32", "fp16"))
    checks = [c for c in report.checks if c.component == "encoder"]
    assert report.ok, report.failures()
    assert {(c.output, c.mode) for c in checks} == {("latent", "fp32"), ("latent", "fp16")}
    code, out, err = run_cli(["inspect", str(converted_with_encoder), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert "encoder" in info["pipeline"]["components"]
    assert any(p["path"].endswith("VAEEncoder.mlpackage") for p in info["packages"])


@pytest.mark.slow
def test_components_encoder_alone_is_byte_reproducible(converted_with_encoder, diffusers_folder, tmp_path, capsys):
    from snapfusion_coreml.digests import tree_sha256

    out = tmp_path / "enc"
    code, _, err = run_cli(["convert", str(diffusers_folder[0]), "-o", str(out), "--components", "encoder"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["VAEEncoder.mlpackage", "merges.txt", "pipeline.json", "vocab.json"]
    alone = PipelineManifest.read(out).component("encoder")
    full = PipelineManifest.read(converted_with_encoder).component("encoder")
    assert alone.sha256 == full.sha256 == tree_sha256(out / "VAEEncoder.mlpackage")


def test_a_model_without_an_encoder_converts_as_before_and_refuses_components_encoder(tiny_model_dir, tmp_path, capsys):
    from snapfusion_coreml.modeling.loading import ModelFolder

    assert not ModelFolder(tiny_model_dir).has_encoder
    out = tmp_path / "o"
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder,encoder"], capsys)
    assert code == 2 and not out.exists()
    assert _one_line(err) == (f"error: expected a model with a VAE encoder for --components decoder,encoder, got "
                              f"{tiny_model_dir} without one (drop encoder from --components)")


def test_the_interpret_server_runs_the_encoder(converted_with_encoder, diffusers_folder):
    from snapfusion_coreml.interpreter.folder import FolderRunner
    from snapfusion_coreml.interpreter.server import serve
    from snapfusion_coreml.modeling.loading import ModelFolder

    image = (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1).numpy()
    request = json.dumps({"component": "encoder", "inputs": [{"name": "z", "dtype": "float32", "shape": [1, 3, 64, 64]}]})
    stdout = io.BytesIO()
    assert serve(FolderRunner(converted_with_encoder, "fp32"), io.BytesIO(request.encode() + b"\n" + image.tobytes()),
                 stdout) == 1
    header, _, payload = stdout.getvalue().partition(b"\n")
    assert json.loads(header) == {"outputs": [{"name": "latent", "dtype": "float32", "shape": [1, 8, 8, 8]}]}
    with torch.no_grad():
        expected = ModelFolder(diffusers_folder[0]).load("encoder")(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(np.frombuffer(payload, "<f4").reshape(1, 8, 8, 8), expected, atol=1e-4)


@pytest.mark.slow
def test_coreai_writes_and_verifies_the_encoder_asset(diffusers_folder, tmp_path, capsys):
    from tests.coreai.test_coreai import HAVE_COREAI

    if not HAVE_COREAI:
        import pytest

        pytest.skip("the [coreai] extra is not installed")
    out = tmp_path / "ai"
    code, _, err = run_cli(["convert", str(diffusers_folder[0]), "-o", str(out), "--components", "encoder",
                            "--format", "coreai"], capsys)
    assert code == 0, err
    encoder = PipelineManifest.read(out).component("encoder")
    assert (encoder.file, encoder.format) == ("VAEEncoder.aimodel", "coreai")
    code, stdout, err = run_cli(["verify", str(out), "--json"], capsys)
    assert code == 0, err
    checks = json.loads(stdout)["checks"]
    assert [(c["component"], c["output"], c["mode"]) for c in checks] == [("encoder", "latent", "coreai")]
