#!/usr/bin/env bash
# Tests of the Swift package, on Linux or macOS:
#   1. `swift test` (Swift 6 language mode): tokenizer, RNG, sampler, pipeline.json, pipeline,
#      NaN guard, async progress, residency modes, compiled-model cache, float16 reading,
#      interpreter protocol and benchmark harness, against the golden vectors in ../tests/golden;
#   2. the repository root's Package.swift (what apps add) is a valid manifest;
#   3. scripts/typecheck-apple.sh: the Core ML backend and the CLI's Core ML branches type-check
#      against documented stubs of the Core ML and CoreGraphics API (Linux only; macOS compiles
#      them for real in step 1);
#   4. `swiftc -parse` of every Swift file of the sample app and every other Apple-only file,
#      which Linux cannot type-check (SwiftUI, UIKit, PhotosUI).
# Exits non-zero on the first failure. SWIFT_JOBS sets build parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

swift test -j "${SWIFT_JOBS:-2}"

(cd .. && swift package dump-package >/dev/null)
echo "root Package.swift: valid manifest"

bash scripts/typecheck-apple.sh

apple_only=()
while IFS= read -r -d '' file; do
    apple_only+=("$file")
done < <(find App -name '*.swift' -print0 | sort -z)
while IFS= read -r -d '' file; do
    if grep -qE '^[[:space:]]*(#if canImport|import (CoreML|CoreGraphics|ImageIO|SwiftUI|UIKit|AppKit|PhotosUI|Photos|UniformTypeIdentifiers|AppleProductTypes))' "$file"; then
        apple_only+=("$file")
    fi
done < <(find Sources -name '*.swift' -print0 | sort -z)

if [ "${#apple_only[@]}" -eq 0 ]; then
    echo "error: found no Apple-only Swift files to parse; is the checkout complete?" >&2
    exit 1
fi
swiftc -parse "${apple_only[@]}"
echo "swiftc -parse: ${#apple_only[@]} Apple-only Swift files parse (every file of the app included)"
