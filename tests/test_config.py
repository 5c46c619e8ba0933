import dataclasses
import json

import pytest

from snapfusion_coreml.config import (
    RESNET,
    TRANSFORMER,
    LayoutPairing,
    StageLayout,
    UNetLayout,
    block_name,
    load_layout,
    plan_blocks,
    resolve_layout,
)
from snapfusion_coreml.errors import UserError


def test_presets_match_the_paper_block_counts():
    sd, sf = resolve_layout("sd-v1.5"), resolve_layout("snapfusion")

    def counts(layout, stage, kind):
        return sum(k == kind for k in layout.stage(stage).blocks)

    # Table 3: Down-1 CA 2->0, Up-3 CA 3->0, Up-1 CA 3->6 with RB 3->2
    assert counts(sd, "down_blocks.0", TRANSFORMER) == 2 and counts(sf, "down_blocks.0", TRANSFORMER) == 0
    assert counts(sd, "up_blocks.3", TRANSFORMER) == 3 and counts(sf, "up_blocks.3", TRANSFORMER) == 0
    assert counts(sf, "up_blocks.1", TRANSFORMER) == 6 and counts(sf, "up_blocks.1", RESNET) == 2
    # all 8x8 work: 7 -> 4 ResNets, 1 transformer
    low = ("down_blocks.3", "mid_block", "up_blocks.0")
    assert sum(counts(sd, s, RESNET) for s in low) == 7 and sum(counts(sf, s, RESNET) for s in low) == 4
    assert sum(counts(sf, s, TRANSFORMER) for s in low) == 1
    assert sd.block_counts() == {RESNET: 22, TRANSFORMER: 16}


def test_skip_plan_reproduces_sd_channels():
    plan = {s.name: s for s in plan_blocks(resolve_layout("sd-v1.5"))}
    assert plan["up_blocks.1.resnets.2"].in_channels == 1280 + 640
    assert plan["up_blocks.3.resnets.0"].in_channels == 640 + 320
    assert plan["down_blocks.1.resnets.0"].in_channels == 320
    assert not plan["down_blocks.1.resnets.0"].skippable and plan["down_blocks.1.attentions.0"].skippable


def test_block_name_is_the_diffusers_module_name_for_every_record():
    """The layout's blocks, the blocks manifest and the latency table name a block the same way."""
    from snapfusion_coreml.contracts.blocks_manifest import BlockEntry
    from snapfusion_coreml.latency.table import LatencyEntry, LatencyTable

    assert block_name("up_blocks.1", RESNET, 2) == "up_blocks.1.resnets.2"
    assert block_name("mid_block", TRANSFORMER, 0) == "mid_block.attentions.0"
    spec = next(s for s in plan_blocks(resolve_layout("snapfusion")) if s.kind == TRANSFORMER)
    entry = BlockEntry(spec.stage, spec.index, spec.kind, 8, 4, 4, 1, "b.mlpackage", (), ())
    latency = LatencyEntry(spec.stage, spec.index, spec.kind, 8, 4, 4, 1, 1.0, 2.0)
    assert spec.name == entry.name == latency.name == block_name(spec.stage, spec.kind, spec.index)
    assert LatencyTable((latency,)).lookup(spec.stage, spec.kind, spec.index) is latency


def test_layout_pairing_goes_by_the_layout_name_not_the_path_it_was_read_from(tmp_path):
    """SD-v1.5 runs the full decoder for 50 steps, every other layout the slim one for 8; a copy of
    the SD-v1.5 layout under another file name is still SD-v1.5."""
    from snapfusion_coreml.assets import layouts_dir
    from snapfusion_coreml.latency.estimate import shapes_from_preset

    sd, sf = LayoutPairing.of(resolve_layout("sd-v1.5")), LayoutPairing.of(resolve_layout("snapfusion"))
    assert (sd.slim_decoder, sd.steps, sd.decoder.width_multiplier) == (False, 50, 1.0)
    assert (sf.slim_decoder, sf.steps, sf.decoder.width_multiplier) == (True, 8, 0.5)
    copy = tmp_path / "baseline.json"
    copy.write_text((layouts_dir() / "sd-v1.5.json").read_text())
    assert LayoutPairing.of(load_layout(copy)) == sd
    shapes = shapes_from_preset(str(copy))
    assert (shapes.decoder, shapes.defaults.steps) == (sd.decoder, 50)


def test_layout_round_trips_through_json(tmp_path):
    layout = resolve_layout("snapfusion")
    layout.save(tmp_path / "l.json")
    assert load_layout(tmp_path / "l.json") == layout


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["down"][0].update(blocks=["resnet", "conv"]), "unknown block kind 'conv'"),
    (lambda d: d["down"][1].update(blocks=["transformer"]), "start the stage with a resnet"),
    (lambda d: d["down"][0].update(width=33), "multiple of norm_num_groups"),
    (lambda d: d["up"].pop(), "as many up stages"),
    (lambda d: d.update(colour="red"), "unknown layout keys"),
])
def test_bad_layouts_get_one_clear_error(tmp_path, mutate, message):
    data = resolve_layout("sd-v1.5").to_dict()
    mutate(data)
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        load_layout(tmp_path / "bad.json")


def test_config_json_is_read_through_json_fields(tmp_path):
    """Layouts and the VAE, scheduler and sampling-default configs are read by json_fields: a wrong
    type is one "expected KEY as TYPE, got VALUE (in FILE)" line; an empty description is fine."""
    from snapfusion_coreml.config import DecoderConfig, PipelineDefaults, SchedulerConfig

    data = resolve_layout("snapfusion").to_dict()
    data["down"][0]["width"] = "320"
    with pytest.raises(UserError) as err:
        UNetLayout.from_dict(data, "l.json")
    assert str(err.value) == "expected down[0].width as an integer, got a string '320' (in l.json)"
    data = dict(resolve_layout("snapfusion").to_dict(), description="", use_linear_projection="no")
    with pytest.raises(UserError, match=r"^expected use_linear_projection as true or false, got a string 'no' \(in l.json\)$"):
        UNetLayout.from_dict(data, "l.json")
    del data["use_linear_projection"]
    assert UNetLayout.from_dict(data, "l.json").description == ""
    with pytest.raises(UserError, match=r"^expected beta_schedule as scaled_linear or linear, got a string 'cosine' \(in s.json\)$"):
        SchedulerConfig.from_dict({"beta_schedule": "cosine", "_class_name": "DDIMScheduler"}, "s.json")
    with pytest.raises(UserError, match=r"^expected block_out_channels\[1\] as an integer, got a string 'x' \(in d.json\)$"):
        DecoderConfig.from_dict({"block_out_channels": [128, "x"]}, "d.json")
    with pytest.raises(UserError, match=r"^expected steps as an integer, got a number 8.5 \(in p.json\)$"):
        PipelineDefaults.from_dict({"steps": 8.5}, "p.json")
    assert PipelineDefaults.from_dict({"steps": 4, "other": 1}) == PipelineDefaults(steps=4)  # unknown keys ignored


def test_unknown_preset_and_invalid_json(tmp_path):
    with pytest.raises(UserError, match="unknown layout preset 'nope'"):
        resolve_layout("nope")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(UserError, match="invalid JSON"):
        resolve_layout(tmp_path / "x.json")


def test_replace_stage():
    layout = resolve_layout("snapfusion")
    smaller = layout.replace_stage("up_blocks.1", dataclasses.replace(layout.up[1], blocks=("resnet", "resnet")))
    assert smaller.up[1].blocks == ("resnet", "resnet") and smaller.down == layout.down
    assert isinstance(smaller.mid, StageLayout) and isinstance(smaller, UNetLayout)


def test_latent_factor_is_read_from_the_vae_blocks():
    """Each VAE block but the last halves the side: SD's four blocks give 8 (image_size.VAE_FACTOR),
    a three-block VAE 4; the diffusers defaults take the factor from vae/config.json."""
    from snapfusion_coreml.config import DecoderConfig
    from snapfusion_coreml.image_size import VAE_FACTOR
    from snapfusion_coreml.modeling.diffusers_config import diffusers_defaults

    assert DecoderConfig().latent_factor == VAE_FACTOR == 8
    assert dataclasses.replace(DecoderConfig(), width_multiplier=0.5).latent_factor == 8  # the slim decoder
    assert DecoderConfig(block_out_channels=(32, 64, 64)).latent_factor == 4
    layout = resolve_layout("sd-v1.5")
    assert diffusers_defaults({"block_out_channels": [128, 256, 512, 512]}, layout).image_size == 512
    assert diffusers_defaults({"block_out_channels": [32, 64, 64]}, layout).image_size == 256
    assert diffusers_defaults({}, layout).image_size == 512  # no block list: SD's VAE
