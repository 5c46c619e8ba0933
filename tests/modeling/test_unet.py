import dataclasses

import pytest
import torch
from diffusers import UNet2DConditionModel

from snapfusion_coreml.config import resolve_layout
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.metrics import PARITY_PSNR_DB, psnr
from snapfusion_coreml.modeling import attention as attn
from snapfusion_coreml.modeling.attention import AttentionImpl
from snapfusion_coreml.modeling.checkpoint import checkpoint_state_dict, load_weights
from snapfusion_coreml.modeling.diffusers_config import layout_from_diffusers_config
from snapfusion_coreml.modeling.factory import tiny_layout
from snapfusion_coreml.modeling.unet import SnapFusionUNet
from snapfusion_coreml.modeling.unet_mapping import map_unet_state, map_unet_weights

SD1_LIKE = dict(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=2, cross_attention_dim=24,
                attention_head_dim=4, norm_num_groups=8, sample_size=16)  # legacy: 4 = number of heads
SD2_LIKE = dict(block_out_channels=(32, 64, 64),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                cross_attention_dim=24, attention_head_dim=[2, 4, 4], use_linear_projection=True,
                upcast_attention=True, transformer_layers_per_block=2, norm_num_groups=16, sample_size=16)


def diffusers_unet(config, seed=0):
    torch.manual_seed(seed)
    ref = UNet2DConditionModel(**config).eval()
    for p in ref.parameters():  # no zero-initialised layer may hide a wiring mistake
        p.data.normal_(0, 0.05)
    return ref


@pytest.mark.parametrize("config", [SD1_LIKE, SD2_LIKE], ids=["sd1", "sd2"])
@pytest.mark.parametrize("impl", list(AttentionImpl))
def test_parity_with_diffusers(config, impl):
    ref = diffusers_unet(config)
    ours = SnapFusionUNet(layout_from_diffusers_config(dict(ref.config)), impl).eval()
    load_weights(ours, ref.state_dict(), "diffusers")
    x, t, c = torch.randn(2, 4, 16, 16), torch.tensor([10.0, 700.0]), torch.randn(2, 7, 24)
    with torch.no_grad():
        expected = ref(x, t, c).sample
        got = ours(x, t, c.transpose(1, 2).unsqueeze(2))
    assert psnr(expected.numpy(), got.numpy()) >= PARITY_PSNR_DB


def test_checkpoint_state_dict_is_diffusers_shaped():
    ref = diffusers_unet(SD1_LIKE)
    ours = SnapFusionUNet(layout_from_diffusers_config(dict(ref.config)))
    load_weights(ours, ref.state_dict(), "diffusers")
    saved = checkpoint_state_dict(ours)
    assert saved.keys() == ref.state_dict().keys()
    assert all(saved[k].shape == v.shape for k, v in ref.state_dict().items())


def test_attention_implementations_agree_beyond_one_query_chunk():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 16, 1, attn.QUERY_CHUNK + 37), torch.randn(2, 16, 1, 77), torch.randn(2, 16, 1, 77)
    ref = attn.attention_original(q, k, v, heads=4)
    for fn in (attn.attention_split_einsum, attn.attention_split_einsum_v2):
        assert psnr(ref.numpy(), fn(q, k, v, heads=4).numpy()) >= PARITY_PSNR_DB


def test_unsupported_diffusers_config_is_refused():
    with pytest.raises(UserError, match="class_embed_type"):
        layout_from_diffusers_config({**SD1_LIKE, "class_embed_type": "timestep"})
    with pytest.raises(UserError, match="unsupported UNet block type"):
        layout_from_diffusers_config({**SD1_LIKE, "down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D"]})


def test_skipped_blocks_act_as_identity():
    unet = SnapFusionUNet(tiny_layout()).eval()
    name = "up_blocks.0.attentions.1"
    x, t, c = torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 32, 1, 77)
    with torch.no_grad():
        full = unet(x, t, c)
        skipped = unet(x, t, c, skip_blocks=frozenset({name}))
        unet.up_blocks[0].attentions[1].proj_out.weight.zero_()
        unet.up_blocks[0].attentions[1].proj_out.bias.zero_()
        zeroed = unet(x, t, c)
    assert not torch.allclose(full, skipped)
    assert torch.allclose(skipped, zeroed, atol=1e-6)  # a zero residual branch is the identity


@pytest.mark.slow
def test_sd_weights_map_onto_the_snapfusion_layout():
    sd, sf = resolve_layout("sd-v1.5"), resolve_layout("snapfusion")
    with torch.device("meta"):
        state = checkpoint_state_dict(SnapFusionUNet(sd))
    # zero-stride views of one zero: the mapping reads shapes and copies what it keeps; 3.4 GB of
    # allocated zeros cost a third of the test's time
    state = {k: torch.zeros(()).expand(v.shape) for k, v in state.items()}
    mapped, report = map_unet_state(state, sd, sf)
    assert "down_blocks.0.attentions.0" in report.dropped and "up_blocks.3.attentions.2" in report.dropped
    assert report.copied["up_blocks.1.resnets.1"] == "up_blocks.1.resnets.2"  # same shapes (1920 in)
    assert report.copied["up_blocks.1.attentions.3"] in {"up_blocks.1.attentions.2", "up_blocks.1.attentions.1"}
    assert "mid_block.attentions.0" in report.mapped and not report.identity
    with torch.device("meta"):
        assert mapped.keys() == checkpoint_state_dict(SnapFusionUNet(sf)).keys()


def test_mapping_copies_and_adds_identity_blocks():
    teacher = SnapFusionUNet(tiny_layout(), AttentionImpl.ORIGINAL).eval()
    for p in teacher.parameters():
        p.data.normal_(0, 0.05)
    student_layout = tiny_layout(snapfusion=True)
    up = student_layout.up[0]
    student_layout = student_layout.replace_stage("up_blocks.0", dataclasses.replace(up, blocks=up.blocks + ("transformer",)))
    student, report = map_unet_weights(teacher, student_layout)
    assert "down_blocks.0.attentions.0" in report.dropped
    assert report.copied == {"up_blocks.0.attentions.2": "up_blocks.0.attentions.1"}
    # a block of a kind the stage never had starts as the identity
    top = student_layout.down[0]
    with_new = student_layout.replace_stage("down_blocks.0", dataclasses.replace(top, blocks=top.blocks + ("transformer",)))
    grown, report = map_unet_weights(student, with_new)
    assert report.identity == ["down_blocks.0.attentions.0"]
    x, t, c = torch.randn(1, 4, 8, 8), torch.tensor([300.0]), torch.randn(1, 32, 1, 77)
    with torch.no_grad():
        assert torch.allclose(student(x, t, c), grown(x, t, c), atol=1e-5)


def test_layout_that_does_not_fit_the_weights():
    teacher = SnapFusionUNet(tiny_layout())
    with pytest.raises(UserError, match="layout .snapfusion. does not fit the weights"):
        map_unet_weights(teacher, resolve_layout("snapfusion"))
