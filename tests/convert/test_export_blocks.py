"""export-blocks: one package per UNet block and the manifest of docs/contracts.md section 5."""

import json
import re
from pathlib import Path

import pytest
import torch

from cli_runner import run_cli
from snapfusion_coreml.config import RESNET
from snapfusion_coreml.convert.blocks import BlockExportOptions, export_blocks
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.interpreter.execute import run_program
from snapfusion_coreml.interpreter.program import load_program
from snapfusion_coreml.latency.table import LatencyEntry, load_latency_table
from snapfusion_coreml.metrics import MIN_PSNR_DB, psnr
from snapfusion_coreml.package_info import inspect_package

pytestmark = [pytest.mark.xdist_group("test_export_blocks")]  # its module fixtures are built once, on one worker

ROOT = Path(__file__).resolve().parents[2]
SWIFT_TABLE = ROOT / "tests" / "golden" / "swift" / "latency_table.json"
SWIFT_MANIFEST = ROOT / "ios_app" / "Sources" / "SnapFusionKit" / "Benchmark" / "BlocksManifest.swift"


@pytest.fixture(scope="module")
def exported(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("blocks") / "out"
    calls = []
    summary = export_blocks(tiny_pipeline, BlockExportOptions(out=out), lambda *args: calls.append(args))
    return out, summary, calls


@pytest.mark.slow
def test_manifest_follows_the_layout_plan(exported, tiny_pipeline):
    out, summary, calls = exported
    plan = tiny_pipeline.unet.plan
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == summary.blocks_manifest.to_dict()
    assert {k: manifest[k] for k in ("format", "version", "layout", "image_size")} == {
        "format": "snapfusion-block-manifest", "version": 1, "layout": "tiny", "image_size": 64}
    assert [(b["stage"], b["kind"], b["index"]) for b in manifest["blocks"]] == [(s.stage, s.kind, s.index) for s in plan]
    assert len(plan) == 15 and {s.level for s in plan} == {0, 1}
    time_dim, context_dim = tiny_pipeline.unet.layout.time_embed_dim, tiny_pipeline.unet.layout.cross_attention_dim
    for spec, block in zip(plan, manifest["blocks"]):
        side = 8 // 2 ** spec.level  # 64 px -> 8x8 latents, halved per level
        second = (["temb", [2, time_dim]] if spec.kind == RESNET else ["encoder_hidden_states", [2, context_dim, 1, 77]])
        assert block == {
            "stage": spec.stage, "index": spec.index, "kind": spec.kind, "resolution": side,
            "channels": spec.out_channels, "in_channels": spec.in_channels, "batch": 2, "package": f"{spec.name}.mlpackage",
            "inputs": [{"name": "hidden_states", "shape": [2, spec.in_channels, side, side], "dtype": "float32"},
                       {"name": second[0], "shape": second[1], "dtype": "float32"}],
            "outputs": [{"name": "output", "shape": [2, spec.out_channels, side, side], "dtype": "float32"}],
        }
    # the up-stage ResNets take their skip connection: more channels in than out
    assert any(b["in_channels"] > b["channels"] for b in manifest["blocks"] if b["stage"].startswith("up_blocks"))
    assert sorted(p.name for p in out.iterdir()) == sorted([b["package"] for b in manifest["blocks"]] + ["manifest.json"])
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no temporary folder left beside it
    assert calls == [(s.name, i, len(plan)) for i, s in enumerate(plan)]
    assert [r.name for r in summary.results] == [s.name for s in plan] and all(r.size_bytes > 0 for r in summary.results)


def test_every_package_has_the_declared_io(exported):
    out, summary, _ = exported
    for block in summary.blocks_manifest.to_dict()["blocks"]:
        info = inspect_package(out / block["package"])
        assert info["inputs"] == block["inputs"] and info["outputs"] == block["outputs"], block["package"]
        assert info["deployment_target"] == "iOS16" and info["palettized_share"] == 0.0
        assert info["metadata"]["snapfusion.block"] == block["package"].removesuffix(".mlpackage")


@pytest.mark.parametrize("name", ["up_blocks.1.resnets.1", "mid_block.resnets.1", "up_blocks.0.attentions.1"])
def test_package_computes_its_block(exported, tiny_pipeline, name):
    """The package run by the Core ML interpreter in fp16 against the PyTorch block."""
    out, summary, _ = exported
    block = next(b for b in summary.blocks_manifest.to_dict()["blocks"] if b["package"] == f"{name}.mlpackage")
    g = torch.Generator().manual_seed(0)
    inputs = {t["name"]: torch.randn(t["shape"], generator=g) for t in block["inputs"]}
    with torch.no_grad():
        reference = tiny_pipeline.unet.get_submodule(name)(*inputs.values()).numpy()
    got = run_program(load_program(out / block["package"]), {k: v.numpy() for k, v in inputs.items()}, mode="fp16")["output"]
    x = inputs["hidden_states"].numpy()
    if x.shape == got.shape:
        # residual blocks: compare what the block adds, since the input alone is already ~35 dB from the output
        reference, got = reference - x, got - x
    assert psnr(reference, got) >= MIN_PSNR_DB


def test_swift_reads_the_manifest_and_writes_matching_entries(exported):
    _, summary, _ = exported
    blocks = summary.blocks_manifest.to_dict()["blocks"]
    # 1. BlocksManifest (snake_case keys through ReportCoding.decoder) declares exactly the keys written
    source = SWIFT_MANIFEST.read_text()
    manifest_struct = source[source.index("struct BlocksManifest"):]
    block_struct = manifest_struct[manifest_struct.index("struct Block:"):]
    block_fields = re.findall(r"public var (\w+):", block_struct[:block_struct.index("\n    }")])
    top_fields = re.findall(r"\n    public var (\w+):", manifest_struct[:manifest_struct.index("struct Block:")])
    snake = lambda name: re.sub(r"([A-Z])", r"_\1", name).lower()  # noqa: E731
    assert {snake(f) for f in block_fields} == set(blocks[0])
    assert {snake(f) for f in top_fields} == set(summary.blocks_manifest.to_dict())
    # 2. the latency table Swift writes copies the manifest's block fields into each entry
    table = load_latency_table(SWIFT_TABLE)
    golden = json.loads(SWIFT_TABLE.read_text())
    copied = set(golden["entries"][0]) - {"p50_ms", "p95_ms"}
    assert copied <= set(blocks[0]) and {"stage", "index", "kind", "resolution", "channels", "in_channels", "batch"} == copied
    for entry in golden["entries"]:
        assert isinstance(entry["resolution"], int) and entry["kind"] in ("resnet", "transformer")
    assert [e.name for e in table.entries] == [Path(f"{e.name}.mlpackage").stem for e in table.entries]
    for block in blocks:
        entry = LatencyEntry(**{k: block[k] for k in copied}, p50_ms=1.0, p95_ms=1.0)
        assert f"{entry.name}.mlpackage" == block["package"]  # the cost model's names are the packages' names


@pytest.mark.slow
def test_cli_selected_blocks_batch_size_and_target(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["export-blocks", str(tiny_model_dir), "-o", str(out), "--image-size", "128", "--batch", "1",
            "--target", "iOS17", "--attention", "original", "--blocks", "up_blocks.1.resnets.1, down_blocks.1.attentions.0"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_size"] == 128
    # execution order, whatever the order given; 128 px -> 16x16 latents at level 0, 8x8 at level 1
    assert [(b["package"], b["resolution"], b["batch"]) for b in manifest["blocks"]] == [
        ("down_blocks.1.attentions.0.mlpackage", 8, 1), ("up_blocks.1.resnets.1.mlpackage", 16, 1)]
    assert manifest["blocks"][0]["inputs"][0]["shape"] == [1, 64, 8, 8]
    assert sorted(p.name for p in out.iterdir()) == ["down_blocks.1.attentions.0.mlpackage", "manifest.json",
                                                     "up_blocks.1.resnets.1.mlpackage"]
    info = inspect_package(out / "down_blocks.1.attentions.0.mlpackage")
    assert info["deployment_target"] == "iOS17" and info["metadata"]["snapfusion.attention"] == "original"
    assert "einsum" not in info["op_counts"]  # the original attention is batched matmuls
    assert "up_blocks.1.resnets.1" in stdout and "2 blocks" in stdout
    before = (out / "manifest.json").read_text()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--overwrite" in err and (out / "manifest.json").read_text() == before


@pytest.mark.parametrize("extra, message", [
    (["--blocks", "mid_block.resnets.0,mid_block.resnets.7"], "unknown block 'mid_block.resnets.7' in --blocks"),
    (["--image-size", "72"], "positive multiples of 16"),
    (["--image-size", "64x72"], "got 64x72"),
    (["--image-size", "0"], "sides > 0"),
    (["--image-size", "64by64"], "SIDE or HEIGHTxWIDTH"),
    (["--batch", "3"], "expected --batch 1 or 2"),
    (["--target", "iOS15"], "iOS15"),
    (["--layout", "nope"], "unknown layout preset 'nope'"),
])
def test_cli_errors_write_nothing(tiny_model_dir, tmp_path, capsys, extra, message):
    code, _, err = run_cli(["export-blocks", str(tiny_model_dir), "-o", str(tmp_path / "o"), *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_unknown_block_lists_the_layout_blocks(tiny_pipeline, tmp_path):
    with pytest.raises(UserError, match=r"up_blocks\.1\.attentions\.1") as info:
        export_blocks(tiny_pipeline, BlockExportOptions(out=tmp_path / "o", blocks=("down_blocks.0.resnets.1",)))
    assert "down_blocks.0.resnets.0" in str(info.value) and not (tmp_path / "o").exists()
