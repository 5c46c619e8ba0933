import shutil

import pytest
import torch

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.metrics import PARITY_PSNR_DB, psnr
from snapfusion_coreml.modeling.loading import load_pipeline, save_pipeline
from snapfusion_coreml.tokenizer import tokenize


def test_diffusers_folder_loads_and_matches(diffusers_folder):
    root, unet, vae, text = diffusers_folder
    pipe = load_pipeline(root)
    ids = tokenize(pipe.tokenizer, ["a photo of an astronaut"])
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 550, 18376, 49407]
    with torch.no_grad():
        ours, ref = pipe.text_encoder(input_ids=ids).last_hidden_state, text(input_ids=ids).last_hidden_state
        assert psnr(ref.numpy(), ours.numpy()) >= PARITY_PSNR_DB  # eager vs SDPA attention: rounding only
        x, t, c = torch.randn(1, 4, 8, 8), torch.tensor([321.0]), torch.randn(1, 77, 32)
        assert psnr(unet(x, t, c).sample.numpy(), pipe.unet(x, t, c.transpose(1, 2).unsqueeze(2)).numpy()) >= PARITY_PSNR_DB
        assert psnr(vae.decode(x).sample.numpy(), pipe.decoder(x).numpy()) >= PARITY_PSNR_DB
    assert pipe.scheduler.timestep_spacing == "leading" and pipe.scheduler.steps_offset == 1
    assert pipe.defaults.steps == 50 and pipe.defaults.image_size == 64


@pytest.mark.slow
def test_tokenizer_json_form(diffusers_folder, tmp_path):
    root, *_ = diffusers_folder
    copy = tmp_path / "sd"
    shutil.copytree(root, copy)
    load_pipeline(root).tokenizer.save_pretrained(copy / "tok")
    shutil.rmtree(copy / "tokenizer")
    (copy / "tokenizer").mkdir()
    shutil.copy(copy / "tok" / "tokenizer.json", copy / "tokenizer" / "tokenizer.json")
    pipe = load_pipeline(copy)
    assert tokenize(pipe.tokenizer, ["Héllo, wörld!"]).tolist() == tokenize(load_pipeline(root).tokenizer, ["Héllo, wörld!"]).tolist()


def test_own_folder_round_trip(tiny_pipeline, tmp_path):
    save_pipeline(tiny_pipeline, tmp_path / "m")
    again = load_pipeline(tmp_path / "m")
    assert again.unet.layout == tiny_pipeline.unet.layout and again.scheduler == tiny_pipeline.scheduler
    a = tiny_pipeline.generate("a red fox", steps=2, seed=3)
    b = again.generate("a red fox", steps=2, seed=3)
    assert (a == b).all()


def test_existing_output_is_kept_without_overwrite(tiny_pipeline, tmp_path):
    save_pipeline(tiny_pipeline, tmp_path / "m")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        save_pipeline(tiny_pipeline, tmp_path / "m")


@pytest.mark.parametrize("damage, message", [
    (lambda root: shutil.rmtree(root), "model folder not found"),
    (lambda root: (root / "model_index.json").unlink(), "expected model_index.json"),
    (lambda root: (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 20), "corrupt or truncated"),
    (lambda root: _truncate(root / "text_encoder" / "model.safetensors"), "corrupt or truncated"),
    (lambda root: (root / "unet" / "layout.json").write_text((root / "unet" / "layout.json").read_text().replace('"width": 64', '"width": 96')), "expected weights matching"),
    (lambda root: shutil.rmtree(root / "vae_decoder"), "expected a vae_decoder/ folder"),
])
def test_bad_model_folders_get_one_clear_error(tiny_model_dir, tmp_path, damage, message):
    root = tmp_path / "model"
    shutil.copytree(tiny_model_dir, root)
    damage(root)
    with pytest.raises(UserError, match=message):
        load_pipeline(root)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_pickle_needs_opt_in(diffusers_folder, tmp_path):
    root, unet, *_ = diffusers_folder
    copy = tmp_path / "sd"
    shutil.copytree(root, copy)
    (copy / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(unet.state_dict(), copy / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(UserError, match="--allow-pickle"):
        load_pipeline(copy)
    assert load_pipeline(copy, allow_pickle=True).unet is not None


def test_unet_weights_are_the_tensors_read_not_a_second_copy(diffusers_folder):
    """load_new builds the UNet on the meta device and adopts the tensors read from the file, so a
    full-size UNet costs its weights once, not twice (benchmarks/results/convert_memory.md)."""
    from safetensors.torch import load_file

    from snapfusion_coreml.modeling.checkpoint import find_weights, load_new
    from snapfusion_coreml.modeling.loading import load_unet, unet_folder_layout
    from snapfusion_coreml.modeling.unet import SnapFusionUNet

    root, unet, *_ = diffusers_folder
    state = load_file(str(find_weights(root / "unet")))
    pointers = {t.data_ptr() for t in state.values()}
    adopted = load_new(lambda: SnapFusionUNet(unet_folder_layout(root / "unet")), state, "unet")
    assert {p.data_ptr() for p in adopted.parameters()} <= pointers
    x, t, c = torch.randn(1, 4, 8, 8), torch.tensor([321.0]), torch.randn(1, 77, 32)
    with torch.no_grad():
        reference = unet(x, t, c).sample
        assert psnr(reference.numpy(), load_unet(root / "unet")(x, t, c.transpose(1, 2).unsqueeze(2)).numpy()) >= PARITY_PSNR_DB


def test_load_new_refuses_modules_with_tensors_outside_the_state_dict():
    from snapfusion_coreml.modeling.checkpoint import load_new

    class WithBuffer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)
            self.register_buffer("table", torch.arange(3.0), persistent=False)

    state = {"linear.weight": torch.ones(2, 2), "linear.bias": torch.zeros(2)}
    with pytest.raises(ValueError, match="table"):
        load_new(WithBuffer, state, "test")
