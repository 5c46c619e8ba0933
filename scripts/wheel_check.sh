#!/usr/bin/env bash
# The package as users and CI images install it: build the wheel from the checkout's files, install
# it (not editable) into a fresh virtual environment, then run the README main job and verify its
# output from a folder outside the checkout, so nothing can come from the source tree.
#
#   bash scripts/wheel_check.sh [PYTHON]     PYTHON builds the wheel (default .venv/bin/python;
#                                            it needs setuptools, which the test extra installs)
#
# Dependencies come through pip as configured (index, find-links, its cache): on a machine where
# scripts/test.sh has just installed .venv they are in pip's cache, so nothing is downloaded twice.
# Set SNAPFUSION_KEEP_WHEEL_CHECK=1 to keep the work folder for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/snapfusion-wheel-check.XXXXXX")
cleanup() {
    if [ "${SNAPFUSION_KEEP_WHEEL_CHECK:-0}" = 1 ]; then echo "wheel check: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 1. the checkout's files (tracked and new, not ignored ones such as build/ or .venv) into a clean
#    copy: a stale build/ folder can never leak into the wheel
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard \
    | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$WORK/src"

# 2. the wheel
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src"
wheels=("$WORK"/dist/snapfusion_coreml-*.whl)
[ -f "${wheels[0]}" ] || { echo "error: no wheel was built in $WORK/dist" >&2; exit 1; }
echo "wheel check: built $(basename "${wheels[0]}") ($(du -k "${wheels[0]}" | cut -f1) KB)"

# 3. a fresh environment with the wheel and its declared dependencies only (no extras)
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheels[0]}"
"$WORK/venv/bin/python" -m pip check --disable-pip-version-check

# 4. the README main job and verify, from outside the checkout, with nothing of it on the path
mkdir "$WORK/run"
cd "$WORK/run"
env -u PYTHONPATH "$WORK/venv/bin/snapfusion-coreml" convert -o out/default --palettize text_encoder=8,unet=6 --overwrite
env -u PYTHONPATH "$WORK/venv/bin/snapfusion-coreml" verify out/default

# 5. a command whose extra is not installed says which extra, in one line, exit 2, writing nothing
set +e
env -u PYTHONPATH "$WORK/venv/bin/snapfusion-coreml" report "$WORK/src/tests/golden/swift/benchmark.json" -o report \
    >report.out 2>&1
code=$?
set -e
if [ "$code" != 2 ] || ! grep -q "install snapfusion-coreml\[report\]" report.out || [ -e report ]; then
    echo "error: report without the report extra: expected exit 2 naming snapfusion-coreml[report], got exit $code:" >&2
    cat report.out >&2
    exit 1
fi
echo "wheel check: without extras, report says: $(cat report.out)"

# 6. the code and the bundled model both came from the installed wheel
env -u PYTHONPATH "$WORK/venv/bin/python" - "$WORK/venv" <<'EOF'
import sys
from pathlib import Path

import snapfusion_coreml
from snapfusion_coreml.contracts.pipeline_json import PipelineManifest

venv = Path(sys.argv[1]).resolve()
package = Path(snapfusion_coreml.__file__).resolve()
if venv not in package.parents:
    sys.exit(f"error: snapfusion_coreml was imported from {package}, not from the installed wheel in {venv}")
source = PipelineManifest.read("out/default").source.model
if venv not in Path(source).resolve().parents:
    sys.exit(f"error: the bundled model was read from {source}, not from the installed wheel in {venv}")
print(f"wheel check: the installed package converted and verified its bundled model ({source})")
EOF
