"""scripts/release_check.sh refuses a release whose version does not match the code, before running
anything slow (docs/releasing.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import snapfusion_coreml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "release_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_version_other_than_the_codes_is_refused():
    result = _run("99.0.0")
    assert result.returncode == 1
    assert f"expected snapfusion_coreml.__version__ 99.0.0, got {snapfusion_coreml.__version__}" in result.stderr


def test_a_malformed_version_is_a_usage_error():
    for args in ((), ("v0.2.0",), ("0.2",)):
        result = _run(*args)
        assert result.returncode == 2 and "usage: scripts/release_check.sh X.Y.Z" in result.stderr
