#!/usr/bin/env bash
# Type-checks the Core ML and Core AI backends and every `#if canImport(CoreML)`,
# `#if canImport(CoreAI)` and `#if canImport(Darwin)` path of SnapFusionKit and snapfusion-cli on
# Linux, against stub modules (scripts/apple-stubs) that declare exactly the Core ML, Core AI,
# CoreGraphics and Darwin API the code calls, each signature copied from Apple's documentation
# page or SDK header cited next to it. Swift 6 language mode; warnings are errors, so the
# "0 warnings" of an Apple build holds for these branches too. The Darwin stub declares
# `mach_task_self_` as SDKs before Xcode 16.3 do, so code that only builds with newer SDKs fails
# here. On macOS the real SDK is used by `swift build`, so this check is only needed (and only
# run) where Core ML is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname)" = Darwin ]; then
    echo "typecheck-apple: macOS builds against the real SDK; skipped"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-swift-version 6 -warnings-as-errors -I "$work")

# 1. the stub modules (library evolution: enums are non-frozen, like Objective-C NS_ENUMs)
stub_flags=(-swift-version 6 -I "$work" -suppress-warnings)  # Foundation itself lacks library evolution
# Darwin in Swift 5 mode: a C global is declared without concurrency checks, as imported headers are
swiftc -emit-module -parse-as-library -enable-library-evolution -swift-version 5 -I "$work" -suppress-warnings -module-name Darwin \
    scripts/apple-stubs/Darwin.swift -emit-module-path "$work/Darwin.swiftmodule"
swiftc -emit-module -parse-as-library -enable-library-evolution "${stub_flags[@]}" -module-name CoreGraphics \
    scripts/apple-stubs/CoreGraphics.swift -emit-module-path "$work/CoreGraphics.swiftmodule"
swiftc -emit-module -parse-as-library -enable-library-evolution "${stub_flags[@]}" -module-name CoreML \
    scripts/apple-stubs/CoreML.swift -emit-module-path "$work/CoreML.swiftmodule"
swiftc -emit-module -parse-as-library -enable-library-evolution "${stub_flags[@]}" -module-name CoreAI \
    scripts/apple-stubs/CoreAI.swift -emit-module-path "$work/CoreAI.swiftmodule"

# 2. SnapFusionKit with canImport(CoreML), canImport(CoreGraphics) and canImport(Darwin) true
kit=()
while IFS= read -r -d '' file; do kit+=("$file"); done < <(find Sources/SnapFusionKit -name '*.swift' -print0 | sort -z)
swiftc -emit-module -parse-as-library "${flags[@]}" -module-name SnapFusionKit "${kit[@]}" \
    -emit-module-path "$work/SnapFusionKit.swiftmodule"

# 3. snapfusion-cli's Core ML and Darwin branches (generate, benchmark, latency-table, the interpreter pipe)
cli=()
while IFS= read -r -d '' file; do cli+=("$file"); done < <(find Sources/snapfusion-cli -name '*.swift' -print0 | sort -z)
swiftc -typecheck "${flags[@]}" -module-name snapfusion_cli "${cli[@]}"

# 4. negative control: a misspelled Core ML call must fail against the stubs
cat > "$work/control.swift" <<'SWIFT'
import CoreML
func control(_ url: URL) throws -> URL { try MLModel.compileModell(at: url) }
SWIFT
if swiftc -typecheck "${flags[@]}" "$work/control.swift" >"$work/control.log" 2>&1 \
    || ! grep -q "has no member 'compileModell'" "$work/control.log"; then
    echo "error: the stubs did not reject a misspelled Core ML call as expected; the check proves nothing" >&2
    cat "$work/control.log" >&2
    exit 1
fi

# 5. negative controls for the Darwin branches: reading `mach_task_self_` (rejected in Swift 6 by
#    SDKs before Xcode 16.3) and `String(cString:)` on an array (deprecated in Swift 6) must fail
cat > "$work/control_task.swift" <<'SWIFT'
import Darwin
func control() -> mach_port_t { mach_task_self_ }
SWIFT
cat > "$work/control_cstring.swift" <<'SWIFT'
import Darwin
func control(_ buffer: [CChar]) -> String { String(cString: buffer) }
SWIFT
for control in control_task control_cstring; do
    if swiftc -typecheck "${flags[@]}" "$work/$control.swift" >"$work/$control.log" 2>&1; then
        echo "error: $control.swift type-checked against the Darwin stub; the check of the Darwin branches proves nothing" >&2
        exit 1
    fi
done
grep -q "not concurrency-safe" "$work/control_task.log" || { cat "$work/control_task.log" >&2; exit 1; }
grep -q "deprecated" "$work/control_cstring.log" || { cat "$work/control_cstring.log" >&2; exit 1; }

# 6. negative control for Core AI: a misspelled call must fail against its stub too
cat > "$work/control_ai.swift" <<'SWIFT'
import CoreAI
func control(_ url: URL) async throws -> InferenceFunction? { try await AIModel(contentsOf: url).loadFunktion(named: "main") }
SWIFT
if swiftc -typecheck "${flags[@]}" "$work/control_ai.swift" >"$work/control_ai.log" 2>&1 \
    || ! grep -q "has no member 'loadFunktion'" "$work/control_ai.log"; then
    echo "error: the Core AI stub did not reject a misspelled call as expected; the check proves nothing" >&2
    cat "$work/control_ai.log" >&2
    exit 1
fi

echo "typecheck-apple: SnapFusionKit (${#kit[@]} files) and snapfusion-cli (${#cli[@]} files) type-check against the Core ML, Core AI, CoreGraphics and Darwin stubs (Darwin and Core AI negative controls rejected)"
