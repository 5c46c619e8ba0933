import json

import pytest

from snapfusion_coreml.config import DecoderConfig, resolve_layout
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.latency import cost_model as cm
from snapfusion_coreml.latency.estimate import estimate, shapes_from_model, shapes_from_preset
from snapfusion_coreml.latency.table import load_latency_table


def test_op_costs_by_hand():
    op = cm.conv("c", b=1, h=4, w=4, cin=2, cout=3, k=3)
    assert op.macs == 16 * 2 * 3 * 9  # 864
    assert op.activations == (32, 48) and op.weights == 54
    # everything small -> on chip: weights at WEIGHT_BANDWIDTH, activations at SRAM_BANDWIDTH
    m = cm.Machine(mac_rate=1e3, dram_bandwidth=1.0, sram_bandwidth=2.0, on_chip_bytes=1e9, op_overhead_s=0.5)
    memory = 2 * 54 / cm.WEIGHT_BANDWIDTH + 2 * (32 + 48) / 2.0  # 80 s
    assert op.seconds(m) == pytest.approx(max(864 / 1e3, memory) + 0.5)
    spill = cm.Machine(mac_rate=1e3, dram_bandwidth=1.0, sram_bandwidth=2.0, on_chip_bytes=70, op_overhead_s=0.0)
    assert op.seconds(spill) == pytest.approx(2 * 54 / cm.WEIGHT_BANDWIDTH + 64 / 2.0 + 96 / 1.0)  # the 96-byte output spills


def test_macs_match_the_reference_counts():
    # analytical count (conv, linear and attention matmuls; 512 px, batch 1): SD-v1.5 ~402 GMACs, paper Table 3's layout ~300
    sd = sum(op.macs for op in cm._unet_ops(resolve_layout("sd-v1.5"), batch=1)) / 1e9
    sf = sum(op.macs for op in cm._unet_ops(resolve_layout("snapfusion"), batch=1)) / 1e9
    assert 390 < sd < 415 and 290 < sf < 315


def test_reproduces_the_published_ratios_within_1_5x():
    sd = cm.estimate_unet_step_ms(resolve_layout("sd-v1.5"))
    sf = cm.estimate_unet_step_ms(resolve_layout("snapfusion"))
    assert 1700 / 230 / 1.5 <= sd / sf <= 1700 / 230 * 1.5
    full = cm.estimate_decoder_ms(DecoderConfig())
    slim = cm.estimate_decoder_ms(DecoderConfig(width_multiplier=0.5))
    assert 369 / 116 / 1.5 <= full / slim <= 369 / 116 * 1.5
    for value, device in ((sd, 1700), (sf, 230), (full, 369), (slim, 116)):
        assert device / 1.5 <= value <= device * 1.5


def test_constants_are_the_calibration_result():
    m = cm.calibrate(resolve_layout("sd-v1.5"), resolve_layout("snapfusion"))
    assert (m.mac_rate, m.dram_bandwidth, m.sram_bandwidth, m.on_chip_bytes, m.op_overhead_s) == (
        cm.MAC_RATE, cm.DRAM_BANDWIDTH, cm.SRAM_BANDWIDTH, cm.ON_CHIP_BYTES, cm.OP_OVERHEAD_S)


def test_table_is_labelled_estimated_and_round_trips(tmp_path):
    table = cm.estimate_table(resolve_layout("snapfusion"))
    assert table.estimated and "estimated" in table.device["model"]
    assert [e.name for e in table.entries][:3] == ["down_blocks.0.resnets.0", "down_blocks.0.resnets.1", "down_blocks.1.resnets.0"]
    table.save(tmp_path / "t.json")
    back = load_latency_table(tmp_path / "t.json")
    assert back.estimated and json.loads((tmp_path / "t.json").read_text())["estimated"] is True
    assert back.total_ms() == pytest.approx(table.total_ms())
    # the 64x64 attention of SD dominates: it is the most expensive block by far
    sd = cm.estimate_table(resolve_layout("sd-v1.5"))
    worst = max(sd.entries, key=lambda e: e.p50_ms)
    assert worst.kind == "transformer" and worst.resolution == 64


def test_end_to_end_estimate_of_presets_and_model_folders(tmp_path):
    sf, plan = estimate(shapes_from_preset("snapfusion"))
    assert (sf.steps, plan.unet_calls, plan.cfg, plan.unet_evaluations) == (8, 8, True, 16)
    assert sf.end_to_end_ms == pytest.approx(2 * sf.text_encoder_ms + 8 * sf.unet_step_ms + sf.decoder_ms)
    assert 1960 / 1.5 <= sf.end_to_end_ms <= 1960 * 1.5  # paper: 1.96 s
    # 4 LCM steps without CFG: 4 batch-1 calls and one text encoder run, under half the 8-step CFG time
    lcm, lcm_plan = estimate(shapes_from_preset("snapfusion"), steps=4, sampler="lcm", guidance=1.0)
    assert (lcm_plan.sampler, lcm_plan.unet_calls, lcm_plan.cfg, lcm_plan.unet_evaluations) == ("lcm", 4, False, 4)
    assert lcm.end_to_end_ms == pytest.approx(lcm.text_encoder_ms + 4 * lcm.unet_step_ms + lcm.decoder_ms)
    assert lcm.unet_step_ms < sf.unet_step_ms and lcm.end_to_end_ms < 0.5 * sf.end_to_end_ms
    # PLMS runs its first step twice
    assert estimate(shapes_from_preset("sd-v1.5"), sampler="pndm")[1].unet_calls == 51
    with pytest.raises(UserError, match="model folder not found"):
        shapes_from_model(tmp_path / "missing")
