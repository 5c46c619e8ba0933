#!/usr/bin/env bash
# Install the project into .venv and run every test: Python (pytest) and, where a Swift toolchain
# exists, the Swift package (swift test + swiftc -parse of the Apple-only sources).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/python -m pytest

if command -v swift >/dev/null 2>&1; then
    bash ios_app/scripts/test.sh
else
    echo "no Swift toolchain found: Swift tests skipped"
fi
