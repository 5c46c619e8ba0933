#!/usr/bin/env bash
# Tests of the Swift package, on Linux or macOS:
#   1. `swift test` (tokenizer, RNG, sampler, pipeline.json, pipeline and benchmark harness
#      against the golden vectors in ../tests/golden);
#   2. `swiftc -parse` of every Swift file that needs Apple frameworks (the Core ML backend,
#      everything under `#if canImport`, the SwiftUI sample app), which Linux cannot compile.
# Exits non-zero on the first failure. SWIFT_JOBS sets build parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

swift test -j "${SWIFT_JOBS:-2}"

apple_only=()
while IFS= read -r -d '' file; do
    if grep -qE '^[[:space:]]*(#if canImport|import (CoreML|CoreGraphics|ImageIO|SwiftUI|UIKit|AppKit|PhotosUI|UniformTypeIdentifiers|AppleProductTypes))' "$file"; then
        apple_only+=("$file")
    fi
done < <(find Sources App -name '*.swift' -print0 | sort -z)

if [ "${#apple_only[@]}" -eq 0 ]; then
    echo "error: found no Apple-only Swift files to parse; is the checkout complete?" >&2
    exit 1
fi
swiftc -parse "${apple_only[@]}"
echo "swiftc -parse: ${#apple_only[@]} Apple-only Swift files parse"
