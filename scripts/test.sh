#!/usr/bin/env bash
# Install the project into .venv and run every check:
#   1. lint (ruff, configured in pyproject.toml);
#   2. the Python tests (pytest);
#   3. the wheel as users install it (scripts/wheel_check.sh: built, installed into a fresh
#      environment, the README main job run and verified outside the checkout);
#   4. the Swift package (ios_app/scripts/test.sh). Without a Swift toolchain this step is skipped
#      with a note, except on CI (CI=true), where a missing toolchain fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

# 0. the Swift toolchain, decided first so that CI fails before an hour of other work
swift_note="note: no Swift toolchain found (no swift on PATH): the Swift package tests are skipped; install Swift 5.9 or later (swift.org) to run them"
if command -v swift >/dev/null 2>&1; then
    have_swift=1
elif [ "${CI:-}" = "true" ]; then
    echo "error: CI=true but no Swift toolchain was found (no swift on PATH); the Swift package must be tested on CI" >&2
    exit 1
else
    have_swift=0
    echo "$swift_note"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "== lint"
.venv/bin/ruff check .

echo "== python tests"
# one process per core (SNAPFUSION_TEST_WORKERS to change; 0: all in this process); tests spread
# one by one, except a file marked xdist_group (module fixtures too costly to build twice), and
# tests/conftest.py makes each conversion once for both processes
.venv/bin/python -m pytest -n "${SNAPFUSION_TEST_WORKERS:-2}" --dist loadgroup

echo "== wheel"
bash scripts/wheel_check.sh .venv/bin/python

echo "== swift"
if [ "$have_swift" = 1 ]; then
    bash ios_app/scripts/test.sh
else
    echo "$swift_note"
fi
