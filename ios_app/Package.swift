// swift-tools-version: 6.0
// SnapFusionKit development package: the library, the snapfusion-cli executable and the tests
// (`swift test` here). Apps depend on the repository root's Package.swift, which exposes the same
// library sources. The portable core (tokenizer, sampler, RNG, pipeline, benchmark harness,
// interpreter client) builds and is tested on Linux; the Core ML backend is compiled only where
// Core ML exists.
import PackageDescription

let package = Package(
    name: "SnapFusionKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "SnapFusionKit", targets: ["SnapFusionKit"]),
        .executable(name: "snapfusion-cli", targets: ["snapfusion-cli"]),
    ],
    targets: [
        .target(name: "SnapFusionKit", path: "Sources/SnapFusionKit",
                // The privacy manifest of the required-reason APIs the library calls (file timestamps).
                resources: [.copy("PrivacyInfo.xcprivacy")]),
        .executableTarget(name: "snapfusion-cli", dependencies: ["SnapFusionKit"], path: "Sources/snapfusion-cli"),
        .testTarget(name: "SnapFusionKitTests", dependencies: ["SnapFusionKit"], path: "Tests/SnapFusionKitTests"),
    ],
    swiftLanguageModes: [.v6]
)
