#!/usr/bin/env bash
# What makes a release tag: run before `git tag vX.Y.Z` (see docs/releasing.md).
#   1. VERSION equals the Python package's __version__, SnapFusionKit's Version.swift and the
#      sample app's displayVersion (tests/test_version.py checks that all three agree);
#   2. the tag vVERSION does not exist yet and the working tree is clean (the tag names a commit
#      whose files are exactly what was tested);
#   3. every check is green: scripts/test.sh (lint, Python tests, the wheel, the Swift package with
#      CI=true, so a missing Swift toolchain fails instead of skipping).
# Prints the tag command to run when everything passes; never tags or pushes by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ] || ! [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "usage: scripts/release_check.sh X.Y.Z   (expected a semantic version without a leading v, got '${1:-}')" >&2
    exit 2
fi
version=$1
python=${PYTHON:-.venv/bin/python}

# 1. one version everywhere
package_version=$("$python" -c 'import snapfusion_coreml; print(snapfusion_coreml.__version__)')
if [ "$package_version" != "$version" ]; then
    echo "error: expected snapfusion_coreml.__version__ $version, got $package_version (snapfusion_coreml/__init__.py)" >&2
    exit 1
fi
PYTHONPATH=$PWD "$python" -m pytest -q tests/test_version.py

# 2. a new tag on a clean tree
if git rev-parse -q --verify "refs/tags/v$version" >/dev/null; then
    echo "error: tag v$version exists already; bump the version in all three places first" >&2
    exit 1
fi
if [ -n "$(git status --porcelain)" ]; then
    echo "error: the working tree has uncommitted changes; commit them so the tag names what was tested" >&2
    exit 1
fi

# 3. everything green, the Swift package included
CI=true bash scripts/test.sh

echo "release check passed for $version at $(git rev-parse --short HEAD); tag it with:"
echo "  git tag -a v$version -m \"snapfusion-coreml $version\" && git push origin v$version"
