"""The blocks manifest of `export-blocks` as typed records (snapfusion_coreml/contracts/blocks_manifest.py)
against the golden samples the Swift tests read too (tests/golden/blocks_manifests.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapfusion_coreml.contracts.blocks_manifest import BlocksManifest
from snapfusion_coreml.errors import UserError

BLOCKS = json.loads((Path(__file__).resolve().parent / "golden" / "blocks_manifests.json").read_text())["cases"]

@pytest.mark.parametrize("case", BLOCKS, ids=lambda c: c["name"])
def test_golden_blocks_manifests(case):
    if case["expect"] == "ok":
        blocks_manifest = BlocksManifest.from_dict(case["manifest"])
        assert blocks_manifest.to_dict() == case["manifest"]
        assert [b.name for b in blocks_manifest.blocks] == ["down_blocks.0.resnets.0", "down_blocks.1.attentions.0"]
        return
    with pytest.raises(UserError) as info:
        BlocksManifest.from_dict(case["manifest"], "DIR/manifest.json")
    assert str(info.value).startswith("expected ") and str(info.value).endswith("(in DIR/manifest.json)")


def test_blocks_manifest_read_names_a_missing_package(tmp_path):
    data = next(c["manifest"] for c in BLOCKS if c["expect"] == "ok")
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    (tmp_path / data["blocks"][0]["package"]).mkdir()
    with pytest.raises(UserError, match=r"expected package down_blocks.1.attentions.0.mlpackage \(listed in manifest.json\), "
                                        r"got no such package"):
        BlocksManifest.read(tmp_path)
    (tmp_path / data["blocks"][1]["package"]).mkdir()
    assert BlocksManifest.read(tmp_path).layout == "tiny"
