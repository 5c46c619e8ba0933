"""One version everywhere: the Python package, SnapFusionKit (Swift) and the sample app.

`.package(url:from:)` resolves SnapFusionKit by the repository's release tags, and benchmark and
latency-table JSON record `tool_version` from the Swift side, so the numbers must not drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import snapfusion_coreml

ROOT = Path(__file__).resolve().parents[1]


def _quoted(path: Path, pattern: str) -> str:
    match = re.search(pattern, path.read_text(encoding="utf-8"))
    assert match, f"expected {pattern!r} in {path}"
    return match.group(1)


def test_python_swift_and_app_versions_agree():
    source = _quoted(ROOT / "pyproject.toml", r'(?m)^version = \{ attr = "([^"]+)" \}')  # tomllib is 3.11+
    assert source == "snapfusion_coreml.__version__", f"pyproject.toml must read its version from the package, got {source}"
    swift = _quoted(ROOT / "ios_app/Sources/SnapFusionKit/Version.swift", r'static let string = "([^"]+)"')
    app = _quoted(ROOT / "ios_app/App/SnapFusionApp.swiftpm/Package.swift", r'displayVersion: "([^"]+)"')
    assert snapfusion_coreml.__version__ == swift == app, (
        f"versions differ: __init__ {snapfusion_coreml.__version__}, Swift {swift}, app {app}")


def test_root_package_manifest_exposes_the_library_from_ios_app():
    manifest = (ROOT / "Package.swift").read_text(encoding="utf-8")
    assert '.library(name: "SnapFusionKit"' in manifest
    match = re.search(r'\.target\(name: "SnapFusionKit", path: "([^"]+)"[,)]', manifest)
    assert match and (ROOT / match.group(1) / "Pipeline/Pipeline.swift").is_file(), "root Package.swift must point at ios_app sources"
