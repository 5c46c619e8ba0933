"""The VAE encoder loads from every model form generation reads: diffusers folders as any version
wrote them (legacy attention names, fp16 variants, decoder-only VAE files: then no encoder),
single-file LDM checkpoints (first_stage_model.encoder.*), and this project's folders, whose saver
keeps the encoder (vae_encoder/) when the pipeline has one. pipeline.json format 2 still reads;
format 3 carries the encoder component."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.modeling.loading import ModelFolder, load_pipeline, save_pipeline
from tests.modeling.sd_files import tiny_models, write_sd_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a shared machine



def _assert_encodes_like(encoder, vae) -> None:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        mean, logvar = encoder(x).chunk(2, dim=1)
    assert torch.allclose(mean, dist.mean, atol=1e-6, rtol=1e-5) and torch.allclose(logvar, dist.logvar, atol=1e-6, rtol=1e-5)


def test_legacy_attention_names_and_fp16_variant(tmp_path):
    unet, vae, text = tiny_models(seed=7)
    root = write_sd_folder(tmp_path / "m", unet, vae, text, vae_file="diffusion_pytorch_model.fp16.safetensors",
                           legacy_vae_attention=True)
    folder = ModelFolder(root)
    assert folder.has_encoder
    rounded = copy.deepcopy(vae)
    for p in rounded.parameters():
        p.data = p.data.half().float()  # the fp16 file's values
    _assert_encodes_like(folder.load("encoder"), rounded)


def test_a_decoder_only_vae_file_means_no_encoder(tmp_path):
    from safetensors.torch import load_file, save_file

    unet, vae, text = tiny_models(seed=8)
    root = write_sd_folder(tmp_path / "m", unet, vae, text)
    weights = root / "vae" / "diffusion_pytorch_model.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if not k.startswith(("encoder.", "quant_conv."))}, str(weights))
    folder = ModelFolder(root)
    assert not folder.has_encoder
    assert folder.pipeline().encoder is None  # text to image still loads
    with pytest.raises(UserError, match="expected a VAE encoder in .* its VAE weights hold no encoder.. tensors"):
        folder.load("encoder")


def test_single_file_checkpoint_encoder(tmp_path):
    from safetensors.torch import save_file

    from tests.modeling.test_single_file import ldm_checkpoint, write_base

    unet, vae, text = tiny_models(seed=5)
    base = write_base(tmp_path / "base", unet, text)
    state = ldm_checkpoint(unet, vae, text)
    save_file(state, str(tmp_path / "model.safetensors"))
    _assert_encodes_like(load_pipeline(tmp_path / "model.safetensors", base=str(base)).encoder, vae)
    save_file({k: v for k, v in state.items() if not k.startswith(("first_stage_model.encoder.", "first_stage_model.quant_conv."))},
              str(tmp_path / "no-encoder.safetensors"))
    assert load_pipeline(tmp_path / "no-encoder.safetensors", base=str(base)).encoder is None


@pytest.mark.slow
def test_own_folders_keep_the_encoder(diffusers_folder, tmp_path):
    root, _, vae, _ = diffusers_folder
    pipeline = load_pipeline(root)
    save_pipeline(pipeline, tmp_path / "own")
    index = json.loads((tmp_path / "own" / "model_index.json").read_text())
    assert index["vae_encoder"] == ["snapfusion_coreml", "VAEEncoder"]
    assert sorted(p.name for p in (tmp_path / "own" / "vae_encoder").iterdir()) == [
        "diffusion_pytorch_model.safetensors", "encoder_config.json"]
    own = ModelFolder(tmp_path / "own")
    assert own.has_encoder
    _assert_encodes_like(own.load("encoder"), vae)
    reloaded = own.pipeline()
    assert all(torch.equal(a, b) for a, b in zip(reloaded.encoder.state_dict().values(), pipeline.encoder.state_dict().values()))
    # a pipeline without one (the bundled models/default, tiny_pipeline) saves and loads without one
    save_pipeline(dataclasses.replace(pipeline, encoder=None), tmp_path / "bare")
    assert not (tmp_path / "bare" / "vae_encoder").exists()
    assert "vae_encoder" not in json.loads((tmp_path / "bare" / "model_index.json").read_text())
    assert load_pipeline(tmp_path / "bare").encoder is None


def test_pipeline_json_format_2_and_3():
    """The golden format-3 folder the Swift reader is tested on too (tests/golden/pipelines.json)."""
    from pathlib import Path

    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest

    cases = json.loads((Path(__file__).resolve().parents[1] / "golden" / "pipelines.json").read_text())["cases"]
    data = next(c["pipeline"] for c in cases if c["name"] == "v3_with_encoder")
    assert data["format_version"] == 3
    manifest = PipelineManifest.from_dict(data)
    assert manifest.component("encoder").outputs[0].name == "latent"
    older = copy.deepcopy(data)
    older["format_version"] = 2
    del older["components"]["encoder"]
    read = PipelineManifest.from_dict(older)
    assert "encoder" not in read.components and read.to_dict()["format_version"] == 3
    with pytest.raises(UserError, match=r"expected pipeline.json format_version 1 or 2 or 3, got 4"):
        PipelineManifest.from_dict({**data, "format_version": 4}, "OUT/pipeline.json")
